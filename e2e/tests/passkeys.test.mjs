// Passkeys, second factors and recovery codes in Chromium, with the DevTools protocol's
// virtual authenticators (CTAP2, "internal" transport, resident keys, user verification,
// automatic presence: a device-bound platform passkey, backup-eligible false). Sign-up,
// usernameless sign-in, a second passkey on another authenticator, removal (and refusing to
// remove the last way in), the ID token's `amr` / `acr` through openid-client, TOTP computed
// here (RFC 6238), recovery codes, step-up clients, and the login page's autofill markup.
//
// The WebAuthn RP id is `localhost`: the issuer is http://localhost:PORT (a secure context
// for the browser). Sign-up is opened with LATCHKEY_REGISTRATION__MODE=open.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as oidc from 'openid-client';

import { base32Decode, currentStep, totpAt } from '../lib/totp.mjs';
import { ADA, RP_ORIGIN, discoverClient, interceptRp, seedAda, startLatchkey, watchCsp, withBrowser } from '../lib/latchkey.mjs';

const CALLBACK = `${RP_ORIGIN}/callback`;

const ACR_PASSWORD = 'urn:latchkey:acr:password';
const ACR_MFA = 'urn:latchkey:acr:mfa';
const ACR_PASSKEY = 'urn:latchkey:acr:phishing-resistant';

/** A password user who turns on an authenticator app. */
const GRACE = { username: 'grace', email: 'grace@example.com', name: 'Grace Hopper', password: 'cobol compiler 1959' };
/** A password user who adds a passkey (then her second factor). */
const HEDY = { username: 'hedy', email: 'hedy@example.com', name: 'Hedy Lamarr', password: 'frequency hopping 1942' };

let lk;
const secrets = {};

before(async () => {
  lk = await startLatchkey({
    env: { LATCHKEY_REGISTRATION__MODE: 'open' },
    seed(cli) {
      seedAda(cli);
      cli.createUser(GRACE);
      cli.createUser(HEDY);
      const app = (o) =>
        cli.createClient({
          redirectUris: [CALLBACK],
          grantTypes: ['authorization_code'],
          scopes: ['openid', 'profile'],
          authMethod: 'client_secret_basic',
          firstParty: true,
          ...o,
        }).client_secret;
      // First-party: no consent page, the sign-in's last form POST ends at the client.
      secrets.app = app({ id: 'app', name: 'App' });
      // Third-party (consent page) and step-up to two factors.
      secrets['mfa-app'] = app({ id: 'mfa-app', name: 'MFA app', requireMfa: true, firstParty: false });
      secrets['admin-tool'] = app({ id: 'admin-tool', name: 'Admin tool', requirePasskey: true });
    },
  });
});

after(async () => {
  await lk?.stop();
});

/** openid-client's configuration for one of the clients above. */
const config = (id) => discoverClient(lk.issuer, id, oidc.ClientSecretBasic(secrets[id]));

// ---------------------------------------------------------------------------------------
// Virtual authenticators (DevTools protocol, WebAuthn domain)

const cdpSessions = new WeakMap();

async function webauthn(page) {
  if (!cdpSessions.has(page)) {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    cdpSessions.set(page, cdp);
  }
  return cdpSessions.get(page);
}

/** A device-bound platform authenticator that says yes by itself. */
async function addAuthenticator(page) {
  const cdp = await webauthn(page);
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    id: authenticatorId,
    async credentials() {
      return (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials;
    },
    async addCredential(credential) {
      await cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
    },
    async remove() {
      await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
    },
  };
}

/** DevTools gives credential ids in standard, padded base64; pages and the server use base64url. */
const b64url = (b64) => Buffer.from(b64, 'base64').toString('base64url');

/** Waits (at most 30 s) until the TOTP time step is later than `step`. */
async function waitForStepAfter(step) {
  while (currentStep() <= step) {
    const nextStepAt = (currentStep() + 1) * 30_000;
    await new Promise((r) => setTimeout(r, Math.max(50, nextStepAt - Date.now() + 50)));
  }
}

// ---------------------------------------------------------------------------------------
// Pages

const path = (page) => new URL(page.url()).pathname;

/**
 * Chromium fulfils a conditional (autofill) WebAuthn request from a virtual authenticator
 * by itself: the login page would sign in as soon as it loads. Tests that click "Sign in
 * with a passkey" make this browser report no conditional mediation (as browsers without
 * passkey autofill do), so the page's script only asks when the button is clicked.
 */
async function withoutAutofill(page) {
  await page.context().addInitScript(() => {
    if (window.PublicKeyCredential) PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
}

/**
 * Records what the page passes to navigator.credentials.get (allowCredentials as base64url,
 * userVerification) in sessionStorage, which outlives the navigation that follows.
 */
async function recordCredentialRequests(page) {
  await page.evaluate(() => {
    const get = navigator.credentials.get.bind(navigator.credentials);
    const b64url = (buf) =>
      btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    navigator.credentials.get = (options) => {
      const pk = options.publicKey;
      const record = { allow: (pk.allowCredentials ?? []).map((c) => b64url(c.id)), userVerification: pk.userVerification };
      sessionStorage.setItem('credentials.get', JSON.stringify(record));
      return get(options);
    };
  });
}

/** Clicks a submit button and waits for the page it leads to. */
async function submit(page, button) {
  const navigated = page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame() });
  await button.click();
  await navigated;
  await page.waitForLoadState();
}

/** An error the server put in the page (not the script's `#passkey-error`). */
const SERVER_ERROR = 'p.error:not(#passkey-error)';

/** The sign-in form's errors: the server's `p.error` and the script's `#passkey-error`. */
async function loginError(page) {
  const texts = await page.locator('p.error:visible').allInnerTexts();
  return texts.join(' ').trim();
}

/** Signs up on /signup (or the sign-up page already shown); returns the recovery codes. */
async function signUp(page, user, { navigate = true } = {}) {
  if (navigate) await page.goto(`${lk.issuer}/signup`);
  await page.locator('#name').fill(user.name);
  await page.locator('#username').fill(user.username);
  await page.locator('#email').fill(user.email);
  await page.locator('#signup-button').click();
  await page.locator('ol#recovery-codes').waitFor().catch(async (e) => {
    throw new Error(`no recovery codes after sign-up (${e.message}): ${await page.locator('body').innerText()}`);
  });
  assert.equal(path(page), '/signup', 'the codes answer the sign-up POST');
  const codes = await page.locator('ol#recovery-codes li code').allInnerTexts();
  assert.equal(codes.length, 10, 'ten recovery codes');
  for (const c of codes) assert.match(c, /^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/, `recovery code format: ${c}`);
  assert.equal(new Set(codes).size, 10, 'the codes are distinct');
  return codes;
}

/** Signs out through the confirmation page of the end-session endpoint (no hint). */
async function signOut(page) {
  await page.goto(`${lk.issuer}/logout`);
  await page.getByRole('heading', { name: 'Sign out?' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Signed out' }).waitFor();
  await assertSignedOut(page);
}

/**
 * No session: the security page sends the browser to sign in. Asked with the browser's
 * cookies but without rendering the login page (whose autofill request could sign in).
 */
async function assertSignedOut(page) {
  const res = await page.context().request.get(`${lk.issuer}/account/security`, { maxRedirects: 0 });
  const location = new URL(res.headers().location ?? '/nowhere', lk.issuer);
  assert.ok(res.status() >= 300 && res.status() < 400, `without a session /account/security redirects (got ${res.status()})`);
  assert.equal(location.pathname + location.search, '/login?return_to=security');
}

/** Fills and submits the password form of the login page shown. */
async function passwordSignIn(page, user) {
  await page.locator('#username').fill(user.username);
  await page.locator('#password').fill(user.password);
  await page.locator('#password-sign-in button[type=submit]').click();
}

/** Clicks "Sign in with a passkey" on the login page shown (see withoutAutofill). */
async function clickPasskeyButton(page) {
  await page.locator('#passkey-button').click();
}

/** The passkeys listed on the security page: [{ id, name, removable }]. */
async function listedPasskeys(page) {
  return page.locator('ul#passkeys li.passkey').evaluateAll((items) =>
    items.map((li) => ({
      id: li.dataset.credentialId,
      name: li.querySelector('.passkey-name')?.textContent.trim(),
      removable: li.querySelector('button.remove-passkey') !== null,
      lastWayIn: li.textContent.includes('(your last way to sign in)'),
    })),
  );
}


/**
 * An authorization code flow with PKCE for `clientId`, to the intercepted callback; `signIn(page)`
 * is called when the login page shows (skipped with a session that suffices). Returns the
 * tokens openid-client validated, and the callback.
 */
async function codeFlow(page, clientId, signIn, { extra = {}, scope = 'openid profile' } = {}) {
  const cfg = await config(clientId);
  const rp = await interceptRp(page);
  const codeVerifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(cfg, {
    redirect_uri: CALLBACK,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  const arrived = rp.next();
  // A navigation Chromium blocks under Latchkey's CSP fails at once, with its message.
  const csp = watchCsp(page);
  let timer;
  const timeout = new Promise((_, fail) => {
    timer = setTimeout(async () => {
      const body = await page.locator('body').innerText().catch(() => '');
      fail(new Error(`the client was not reached within 30 s; at ${page.url()}: ${body}`));
    }, 30_000);
  });
  const until = (p) => csp.guard(Promise.race([p, timeout]));
  let hit;
  try {
    await page.goto(url.href);
    if (path(page) === '/login') await signIn(page);
    const where = await until(
      Promise.race([
        arrived.then(() => 'client'),
        // An aborted navigation (e.g. blocked by the CSP) is reported by the guard, not here.
        page
          .waitForURL((u) => u.pathname === '/consent', { timeout: 0 })
          .then(() => 'consent', () => new Promise(() => {})),
      ]),
    );
    if (where === 'consent') await page.getByRole('button', { name: 'Allow' }).click();
    hit = await until(arrived);
    // The request is intercepted before the navigation commits: let it finish, so the
    // test's next navigation does not interrupt it.
    await page.waitForURL((u) => u.origin === RP_ORIGIN);
  } finally {
    clearTimeout(timer);
    timeout.catch(() => {});
    csp.dispose();
  }
  const callback = new URL(hit.url);
  const tokens = await oidc.authorizationCodeGrant(cfg, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  return { tokens, callback, config: cfg };
}

const sorted = (a) => [...a].sort();

// ---------------------------------------------------------------------------------------

describe('passkeys, second factors and recovery codes (Chromium virtual authenticators)', () => {
  test('discovery publishes the three acr values', async () => {
    const md = (await config('app')).serverMetadata();
    for (const acr of [ACR_PASSWORD, ACR_MFA, ACR_PASSKEY]) {
      assert.ok(md.acr_values_supported?.includes(acr), `acr_values_supported has ${acr}: ${md.acr_values_supported}`);
    }
  });

  test('the login page: passkey button, username field for autofill, recovery and sign-up links', async () => {
    await withBrowser(async ({ page }) => {
      await page.goto(`${lk.issuer}/login`);
      // Conditional UI (autofill) cannot be driven headless; its markup can be checked.
      assert.equal(await page.locator('#password-sign-in input#username').getAttribute('autocomplete'), 'username webauthn');
      assert.equal(await page.locator('#password').getAttribute('autocomplete'), 'current-password');
      assert.equal((await page.locator('form#passkey-sign-in #passkey-button').innerText()).trim(), 'Sign in with a passkey');
      assert.equal(await page.locator('form#passkey-sign-in').isVisible(), true, 'the passkey form is shown (WebAuthn available)');
      assert.equal(await page.getByRole('link', { name: 'Use a recovery code' }).getAttribute('href'), '/login/recovery');
      assert.equal(await page.getByRole('link', { name: 'Create an account' }).getAttribute('href'), '/signup');
    });
  });

  test("autofill: the login page's conditional request signs in with the passkey on the device", async () => {
    await withBrowser(async ({ page }) => {
      await addAuthenticator(page);
      await signUp(page, { name: 'Ava Autofill', username: 'ava', email: 'ava@example.com' });
      await signOut(page);
      const posts = [];
      page.on('request', (r) => {
        if (r.method() === 'POST') posts.push({ path: new URL(r.url()).pathname, body: r.postData() ?? '' });
      });
      // Nothing is clicked: the page asks with mediation "conditional" as it loads, and
      // Chromium answers from the virtual authenticator as if the user picked the passkey
      // from the username field's suggestions.
      await page.goto(`${lk.issuer}/login`);
      await page.waitForURL((u) => u.pathname === '/login/done').catch(async (e) => {
        throw new Error(`no autofill sign-in (${e.message}); ${await loginError(page)}`);
      });
      const options = posts.find((p) => p.path === '/login/passkey/options');
      assert.ok(options, 'the page asked for options');
      assert.equal(new URLSearchParams(options.body).get('conditional'), '1');
      assert.ok(posts.some((p) => p.path === '/login/passkey'), 'the assertion was posted');
      await page.goto(`${lk.issuer}/account/security`);
      assert.match(await page.locator('body').innerText(), /Signed in as ava/);
    });
  });

  test('sign up with a passkey, sign in without a username, add a second passkey, remove the first, its key no longer signs in', async () => {
    const user = { name: 'Pat Passkey', username: 'pat', email: 'pat@example.com' };
    await withBrowser(async ({ page }) => {
      await withoutAutofill(page);
      // --- sign-up on authenticator A
      const a = await addAuthenticator(page);
      const codes = await signUp(page, user);
      const download = page.locator('a#download-codes');
      assert.equal(await download.getAttribute('download'), 'latchkey-recovery-codes.txt');
      const href = await download.getAttribute('href');
      assert.match(href, /^data:text\/plain/);
      const text = decodeURIComponent(href.slice(href.indexOf(',') + 1));
      for (const c of codes) assert.ok(text.includes(c), `the download holds ${c}`);
      assert.equal(await page.locator('a#continue').getAttribute('href'), '/account/security');

      const [credA] = await a.credentials();
      assert.equal((await a.credentials()).length, 1, 'sign-up created one credential on A');
      assert.equal(credA.rpId, 'localhost');
      assert.equal(credA.isResidentCredential, true, 'a discoverable credential (passkey)');
      const idA = b64url(credA.credentialId);

      await page.locator('a#continue').click();
      await page.waitForURL((u) => u.pathname === '/account/security');
      assert.match(await page.locator('main, body').first().innerText(), /Signed in as pat/);
      assert.deepEqual((await listedPasskeys(page)).map((p) => p.id), [idA]);

      // --- sign out, then usernameless sign-in with A
      await signOut(page);
      await page.goto(`${lk.issuer}/login`);
      assert.equal(await page.locator('#username').inputValue(), '');
      await clickPasskeyButton(page);
      await page.waitForURL((u) => u.pathname === '/login/done').catch(async (e) => {
        throw new Error(`passkey sign-in did not arrive (${e.message}); ${await loginError(page)}`);
      });
      assert.match(await page.locator('body').innerText(), /You are signed in/);

      // --- a second passkey on authenticator B; A is gone from the browser, so the
      // ceremony can only use B (A's credential is kept to put back later).
      const savedA = (await a.credentials())[0];
      assert.ok(savedA.signCount >= 1, 'A signed once');
      await a.remove();
      const b = await addAuthenticator(page);
      await page.goto(`${lk.issuer}/account/security`);
      await page.locator('#passkey-name').fill('Key B');
      await page.locator('#add-passkey-button').click();
      await page.waitForURL((u) => u.pathname === '/account/security' && u.searchParams.get('done') === 'passkey_added').catch(async (e) => {
        throw new Error(`adding a passkey failed (${e.message}): ${await page.locator('body').innerText()}`);
      });
      assert.equal((await page.locator('#done').innerText()).trim(), 'Passkey added.');
      const [credB] = await b.credentials();
      assert.ok(credB, 'B holds the new credential');
      assert.equal(credB.userHandle, savedA.userHandle, 'the same WebAuthn user handle on both authenticators');
      const idB = b64url(credB.credentialId);
      assert.notEqual(idB, idA);
      let listed = await listedPasskeys(page);
      assert.equal(listed.length, 2, `two passkeys listed: ${JSON.stringify(listed)}`);
      assert.deepEqual(sorted(listed.map((p) => p.id)), sorted([idA, idB]));
      assert.equal(listed.find((p) => p.id === idB).name, 'Key B');
      assert.ok(listed.every((p) => p.removable), 'with two passkeys either can be removed');

      // --- remove A's passkey
      await page.locator(`li.passkey[data-credential-id="${idA}"] button.remove-passkey`).click();
      await page.waitForURL((u) => u.searchParams.get('done') === 'passkey_removed');
      listed = await listedPasskeys(page);
      assert.deepEqual(listed.map((p) => p.id), [idB], 'only B is left');
      assert.equal(listed[0].removable, false, 'the last passkey has no Remove button');
      assert.equal(listed[0].lastWayIn, true);

      // --- sign out; sign in to a client with B (usernameless); the ID token says how
      await signOut(page);
      const { tokens, config: cfg } = await codeFlow(page, 'app', clickPasskeyButton, { extra: { acr_values: ACR_PASSKEY } });
      const claims = tokens.claims();
      assert.deepEqual(sorted(claims.amr), sorted(['hwk', 'user', 'mfa']), `amr ${JSON.stringify(claims.amr)}`);
      assert.equal(claims.acr, ACR_PASSKEY);
      const info = await oidc.fetchUserInfo(cfg, tokens.access_token, claims.sub);
      assert.equal(info.preferred_username, 'pat');
      const usedB = (await b.credentials())[0];
      assert.ok(usedB.signCount > credB.signCount, 'B signed the sign-in');

      // --- put A (with its saved key) back without B: the removed passkey must not sign in
      await signOut(page);
      await b.remove();
      const a2 = await addAuthenticator(page);
      await a2.addCredential({
        credentialId: savedA.credentialId,
        isResidentCredential: true,
        rpId: 'localhost',
        privateKey: savedA.privateKey,
        userHandle: savedA.userHandle,
        signCount: savedA.signCount,
      });
      await page.goto(`${lk.issuer}/login`);
      await clickPasskeyButton(page);
      await page.waitForURL((u) => u.pathname === '/login/passkey');
      assert.equal(await loginError(page), 'That passkey could not sign you in.');
      const [usedA] = await a2.credentials();
      assert.ok(usedA.signCount > savedA.signCount, 'the browser did use the removed key (so the server refused it)');
      await assertSignedOut(page);
    });
  });

  test('the last passkey of a user without a password cannot be removed, not even by a forged POST; username-first sign-in', async () => {
    await withBrowser(async ({ page }) => {
      await withoutAutofill(page);
      await addAuthenticator(page);
      await signUp(page, { name: 'Lou Last', username: 'lou', email: 'lou@example.com' });
      await page.locator('a#continue').click();
      await page.waitForURL((u) => u.pathname === '/account/security');
      const [only] = await listedPasskeys(page);
      assert.equal(only.removable, false, 'no Remove button');
      assert.equal(only.lastWayIn, true, '"(your last way to sign in)" instead');
      assert.equal(await page.locator('button.remove-passkey').count(), 0);

      const forged = await page.evaluate(async (id) => {
        const body = new URLSearchParams({ csrf: document.querySelector('input[name=csrf]').value, id });
        const res = await fetch('/account/passkeys/remove', { method: 'POST', body, credentials: 'same-origin' });
        return { status: res.status, url: res.url };
      }, only.id);
      assert.equal(forged.status, 200, 'redirected back to the security page');
      assert.equal(new URL(forged.url).searchParams.get('error'), 'last_method', `landed at ${forged.url}`);
      await page.goto(forged.url);
      assert.match(await page.locator('#security-error').innerText(), /last way to sign in/);
      await page.goto(`${lk.issuer}/account/security`);
      assert.deepEqual((await listedPasskeys(page)).map((p) => p.id), [only.id], 'the passkey is still there');

      // --- it still signs in; username-first: the options name no passkey (a list for the
      // typed name would tell which username and which email share an account); the browser
      // finds the discoverable passkey itself
      await signOut(page);
      await page.goto(`${lk.issuer}/login`);
      await page.locator('#username').fill('lou');
      await recordCredentialRequests(page);
      await clickPasskeyButton(page);
      await page.waitForURL((u) => u.pathname === '/login/done');
      const asked = await page.evaluate(() => JSON.parse(sessionStorage.getItem('credentials.get')));
      assert.deepEqual(asked.allow, [], 'allowCredentials is empty, whatever name was typed');
      assert.equal(asked.userVerification, 'required');
      await page.goto(`${lk.issuer}/account/security`);
      assert.match(await page.locator('body').innerText(), /Signed in as lou/);
    });
  });

  test('authenticator app: enrol from the security page, then password + code gives amr pwd otp mfa', async () => {
    // The computation here against RFC 6238's SHA-1 vector (T = 59: 94287082, 6-digit tail).
    assert.equal(totpAt(Buffer.from('12345678901234567890'), 1), '287082');
    await withBrowser(async ({ page }) => {
      // --- password sign-in straight to the security page
      await page.goto(`${lk.issuer}/login?return_to=security`);
      await passwordSignIn(page, GRACE);
      await page.waitForURL((u) => u.pathname === '/account/security');
      assert.equal((await page.locator('#totp-state').innerText()).trim(), 'Off.');

      // --- enrol
      await page.locator('form#start-totp button').click();
      await page.waitForURL((u) => u.pathname === '/account/totp');
      const secretText = (await page.locator('code#totp-secret').innerText()).trim();
      const secret = base32Decode(secretText);
      assert.ok(secret.length >= 16, `a secret of at least 128 bits (${secret.length} bytes)`);
      const wrongCode = (step) => {
        const near = new Set([-1, 0, 1].map((d) => totpAt(secret, step + d)));
        for (let n = 0; ; n++) {
          const c = String(n).padStart(6, '0');
          if (!near.has(c)) return c;
        }
      };
      await page.locator('#code').fill(wrongCode(currentStep()));
      await submit(page, page.locator('#totp-confirm button[type=submit]'));
      assert.equal(path(page), '/account/totp/confirm');
      assert.match(await page.locator(SERVER_ERROR).innerText(), /not right/);
      const enrolStep = currentStep();
      const enrolCode = totpAt(secret, enrolStep);
      await page.locator('#code').fill(enrolCode);
      await page.locator('#totp-confirm button[type=submit]').click();
      await page.waitForURL((u) => u.pathname === '/account/security').catch(async (e) => {
        throw new Error(`TOTP not confirmed (${e.message}): ${await page.locator('body').innerText()}`);
      });
      assert.equal((await page.locator('#done').innerText()).trim(), 'Authenticator app turned on.');
      assert.equal((await page.locator('#totp-state').innerText()).trim(), 'On.');

      // --- sign out; a client that requires MFA: password, then the second-factor page,
      // then the consent page (a third-party client)
      await signOut(page);
      const { tokens } = await codeFlow(page, 'mfa-app', async (p) => {
        await passwordSignIn(p, GRACE);
        await p.waitForURL((u) => u.pathname === '/login/second-factor').catch(async (e) => {
          throw new Error(`no second-factor page (${e.message}): ${await p.locator('body').innerText()}`);
        });
        assert.equal(await p.locator('form#totp-form').isVisible(), true);
        // A wrong code.
        await p.locator('#totp-code').fill(wrongCode(currentStep()));
        await submit(p, p.locator('#totp-form button[type=submit]'));
        assert.equal(path(p), '/login/second-factor');
        assert.equal(await loginError(p), 'That code is not right.');
        // The enrolment's code again: its time step is spent (while still inside the
        // ±1 step window the server accepts, so only the replay rule refuses it).
        if (currentStep() <= enrolStep + 1) {
          await p.locator('#totp-code').fill(enrolCode);
          await submit(p, p.locator('#totp-form button[type=submit]'));
          assert.equal(await loginError(p), 'That code is not right.', 'a spent time step is refused');
        }
        // A fresh code, from the next time step.
        await waitForStepAfter(enrolStep);
        await p.locator('#totp-code').fill(totpAt(secret, currentStep()));
        await p.locator('#totp-form button[type=submit]').click();
      });
      const claims = tokens.claims();
      assert.deepEqual(claims.amr, ['pwd', 'otp', 'mfa']);
      assert.equal(claims.acr, ACR_MFA);
    });
  });

  test("a password user's passkey as the second factor, finishing at a first-party client", async () => {
    await withBrowser(async ({ page }) => {
      await withoutAutofill(page);
      const authenticator = await addAuthenticator(page);
      // --- password sign-in, add a passkey
      await page.goto(`${lk.issuer}/login?return_to=security`);
      await passwordSignIn(page, HEDY);
      await page.waitForURL((u) => u.pathname === '/account/security');
      await page.locator('#passkey-name').fill('Laptop');
      await page.locator('#add-passkey-button').click();
      await page.waitForURL((u) => u.searchParams.get('done') === 'passkey_added');
      const listed = await listedPasskeys(page);
      assert.deepEqual(listed.map((p) => p.id), [b64url((await authenticator.credentials())[0].credentialId)]);
      assert.equal(listed[0].removable, true, 'with a password, the only passkey can be removed');

      // --- sign out; to the first-party client: password, then the passkey. No consent
      // page, so the second-factor page's form POST ends (after 303s) at the client's
      // redirect URI, which that page's CSP form-action must allow (as the login page's does).
      await signOut(page);
      const { tokens } = await codeFlow(page, 'app', async (p) => {
        await passwordSignIn(p, HEDY);
        await p.waitForURL((u) => u.pathname === '/login/second-factor');
        assert.equal(await p.locator('form#totp-form').count(), 0, 'no authenticator app, no code form');
        await p.locator('#passkey-button').click();
      });
      const claims = tokens.claims();
      assert.deepEqual(sorted(claims.amr), sorted(['pwd', 'hwk', 'user', 'mfa']), `amr ${JSON.stringify(claims.amr)}`);
      assert.equal(claims.acr, ACR_PASSKEY);
    });
  });

  test('recovery code: sign-up from a client, then a code signs in once and counts down', async () => {
    const user = { name: 'Rita Recovery', username: 'rita', email: 'rita@example.com' };
    await withBrowser(async ({ page }) => {
      await withoutAutofill(page);
      await addAuthenticator(page);
      // --- sign-up starts at the client's login page and continues to the client
      let codes;
      const { tokens } = await codeFlow(page, 'app', async (p) => {
        await p.getByRole('link', { name: 'Create an account' }).click();
        await p.waitForURL((u) => u.pathname === '/signup' && u.searchParams.has('req'));
        // A taken username is said before any passkey is made.
        await p.locator('#name').fill('Not Ada');
        await p.locator('#username').fill(ADA.username);
        await p.locator('#signup-button').click();
        await p.locator('#passkey-error').waitFor();
        assert.match(await p.locator('#passkey-error').innerText(), /username is taken/);
        codes = await signUp(p, user, { navigate: false });
        const next = new URL(await p.locator('a#continue').getAttribute('href'), lk.issuer);
        assert.equal(next.pathname, '/authorize/resume');
        assert.ok(next.searchParams.get('req'));
        await p.locator('a#continue').click();
      });
      assert.deepEqual(sorted(tokens.claims().amr), sorted(['hwk', 'user', 'mfa']));
      assert.equal(tokens.claims().acr, ACR_PASSKEY);

      // --- sign out; sign in with a recovery code
      await signOut(page);
      const code = codes[3];
      const useCode = async () => {
        await page.goto(`${lk.issuer}/login`);
        await page.getByRole('link', { name: 'Use a recovery code' }).click();
        await page.waitForURL((u) => u.pathname === '/login/recovery');
        await page.locator('#recovery-sign-in #username').fill(user.username);
        await page.locator('#recovery-sign-in #code').fill(code);
        await page.locator('#recovery-sign-in button[type=submit]').click();
        await page.waitForLoadState();
      };
      await useCode();
      await page.waitForURL((u) => u.pathname === '/account/security').catch(async (e) => {
        throw new Error(`recovery sign-in failed (${e.message}): ${await page.locator('body').innerText()}`);
      });
      assert.equal(await page.locator('#recovered').isVisible(), true);
      assert.equal((await page.locator('#recovery-left').innerText()).trim(), '9 of 10 left.');

      // --- the same code again: refused, no session
      await signOut(page);
      await useCode();
      await page.waitForURL((u) => u.pathname === '/login/recovery');
      assert.equal(await loginError(page), 'The username or recovery code is wrong.');
      await assertSignedOut(page);
    });
  });

  test('a client that requires a passkey refuses a password-only sign-in (403)', async () => {
    await withBrowser(async ({ page }) => {
      const rp = await interceptRp(page);
      const cfg = await config('admin-tool');
      const url = oidc.buildAuthorizationUrl(cfg, {
        redirect_uri: CALLBACK,
        scope: 'openid',
        code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
        code_challenge_method: 'S256',
        state: oidc.randomState(),
      });
      const statuses = [];
      page.on('response', (r) => {
        if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) statuses.push({ url: r.url(), status: r.status() });
      });
      await page.goto(url.href);
      assert.equal(path(page), '/login');
      await page.locator('#username').fill(ADA.username);
      await page.locator('#password').fill(ADA.password);
      await page.locator('#password-sign-in button[type=submit]').click();
      await page.waitForURL((u) => u.pathname !== '/login');
      await page.waitForLoadState();
      const last = statuses.at(-1);
      assert.equal(last.status, 403, `the last page: ${JSON.stringify(statuses)}`);
      assert.match(await page.locator('body').innerText(), /Admin tool requires a sign-in with a passkey/);
      assert.equal(rp.hits.length, 0, 'nothing went back to the client');
    });
  });
});
