// OIDC Session Management 1.0 §3.2, the OP iframe. The relying party posts
// "client_id session_state"; the answer compares session_state with a hash recomputed from
// the browser-state cookie: "unchanged", "changed" or "error", posted back to the sender.
(function () {
  "use strict";
  var cookieName = document.documentElement.getAttribute("data-cookie");

  function browserState() {
    var parts = document.cookie ? document.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {
      var pair = parts[i].trim();
      if (pair.indexOf(cookieName + "=") === 0) { return pair.substring(cookieName.length + 1); }
    }
    return "";
  }

  function sha256Hex(text) {
    return crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)).then(function (digest) {
      return Array.prototype.map.call(new Uint8Array(digest), function (b) {
        return ("0" + b.toString(16)).slice(-2);
      }).join("");
    });
  }

  window.addEventListener("message", function (event) {
    if (!event.source || typeof event.data !== "string") { return; }
    var reply = function (answer) { event.source.postMessage(answer, event.origin); };
    var parts = event.data.split(" ");
    var dot = parts.length === 2 ? parts[1].lastIndexOf(".") : -1;
    if (dot < 1 || !window.crypto || !crypto.subtle) { reply("error"); return; }
    var clientId = parts[0];
    var sessionState = parts[1];
    var salt = sessionState.substring(dot + 1);
    sha256Hex(clientId + " " + event.origin + " " + browserState() + " " + salt).then(function (hash) {
      reply(hash + "." + salt === sessionState ? "unchanged" : "changed");
    }, function () { reply("error"); });
  });
})();
