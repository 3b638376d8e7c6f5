// Passkey ceremonies for Latchkey's pages: fetch options from the server, ask the browser
// (navigator.credentials), put the answer into the form's hidden `credential` field and
// submit the form. The server verifies everything; this script only carries messages.
"use strict";

(function () {
  const toBytes = (b64url) => {
    const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0)).buffer;
  };
  const toB64url = (buffer) => {
    const bytes = new Uint8Array(buffer);
    let raw = "";
    for (const b of bytes) raw += String.fromCharCode(b);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };

  function creationOptions(json) {
    const pk = Object.assign({}, json.publicKey);
    pk.challenge = toBytes(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: toBytes(pk.user.id) });
    pk.excludeCredentials = (pk.excludeCredentials || []).map((c) => Object.assign({}, c, { id: toBytes(c.id) }));
    return { publicKey: pk };
  }

  function requestOptions(json) {
    const pk = Object.assign({}, json.publicKey);
    pk.challenge = toBytes(pk.challenge);
    pk.allowCredentials = (pk.allowCredentials || []).map((c) => Object.assign({}, c, { id: toBytes(c.id) }));
    return { publicKey: pk };
  }

  // PublicKeyCredential.toJSON() where the browser has it; the same shape by hand otherwise.
  function credentialJson(cred) {
    if (typeof cred.toJSON === "function") return JSON.stringify(cred.toJSON());
    const r = cred.response;
    const response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
    }
    return JSON.stringify({
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      authenticatorAttachment: cred.authenticatorAttachment || null,
    });
  }

  function showError(message) {
    const box = document.getElementById("passkey-error");
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  async function fetchOptions(form, fields) {
    const body = new URLSearchParams();
    body.set("csrf", form.elements.csrf.value);
    for (const [k, v] of Object.entries(fields)) if (v) body.set(k, v);
    const res = await fetch(form.dataset.options, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    const json = await res.json().catch(() => ({ error: "The server did not answer as expected." }));
    if (!res.ok) {
      if (json.reauthenticate) window.location.assign(json.reauthenticate);
      throw new Error(json.error || "The server refused the request.");
    }
    return json;
  }

  function browserSupportsPasskeys() {
    return typeof window.PublicKeyCredential === "function" && navigator.credentials;
  }

  // --- sign-in: a button (modal), the username field (username-first), autofill (conditional)
  const signIn = document.getElementById("passkey-sign-in");
  let conditional = null;

  async function signInWith(fields, mediation) {
    const json = await fetchOptions(signIn, fields);
    const options = requestOptions(json);
    if (mediation === "conditional") {
      conditional = new AbortController();
      options.mediation = "conditional";
      options.signal = conditional.signal;
    }
    const cred = await navigator.credentials.get(options);
    if (!cred) throw new Error("No passkey was chosen.");
    signIn.elements.credential.value = credentialJson(cred);
    const remember = document.getElementById("remember");
    if (remember && remember.checked && signIn.elements.remember) {
      signIn.elements.remember.disabled = false;
      signIn.elements.remember.value = "1";
    }
    signIn.submit();
  }

  function modal(useUsername) {
    if (conditional) conditional.abort();
    conditional = null;
    const username = document.getElementById("username");
    const fields = {
      username: useUsername && username ? username.value.trim() : "",
      second_factor: signIn.dataset.secondFactor || "",
    };
    signInWith(fields, "modal").catch((e) => {
      if (e && e.name === "AbortError") return;
      showError(e && e.name === "NotAllowedError" ? "The passkey request was cancelled or timed out." : String(e.message || e));
    });
  }

  if (signIn && browserSupportsPasskeys()) {
    const button = document.getElementById("passkey-button");
    if (button) button.addEventListener("click", () => modal(true));
    const usernameButton = document.getElementById("passkey-username-button");
    if (usernameButton) usernameButton.addEventListener("click", () => modal(true));
    if (!signIn.dataset.secondFactor && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((ok) => {
        if (!ok) return;
        signInWith({ conditional: "1" }, "conditional").catch(() => {});
      });
    }
  } else if (signIn) {
    signIn.hidden = true;
  }

  // --- registration: sign-up and "add a passkey"
  async function register(form, fields) {
    const json = await fetchOptions(form, fields);
    const cred = await navigator.credentials.create(creationOptions(json));
    if (!cred) throw new Error("No passkey was created.");
    form.elements.credential.value = credentialJson(cred);
    form.submit();
  }

  function registrationError(e) {
    if (e && e.name === "InvalidStateError") return "This device already holds a passkey for your account.";
    if (e && e.name === "NotAllowedError") return "The passkey request was cancelled or timed out.";
    return String((e && e.message) || e);
  }

  const signup = document.getElementById("signup");
  if (signup) {
    document.getElementById("signup-button").addEventListener("click", () => {
      if (!signup.reportValidity()) return;
      const el = signup.elements;
      const fields = {
        name: el.name.value,
        username: el.username ? el.username.value : "",
        email: el.email ? el.email.value : "",
        invite: el.invite ? el.invite.value : "",
        req: el.req ? el.req.value : "",
      };
      register(signup, fields).catch((e) => showError(registrationError(e)));
    });
  }

  const add = document.getElementById("add-passkey");
  if (add) {
    document.getElementById("add-passkey-button").addEventListener("click", () => {
      register(add, {}).catch((e) => showError(registrationError(e)));
    });
  }
})();
