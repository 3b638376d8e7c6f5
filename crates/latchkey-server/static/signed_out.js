// Front-Channel Logout 1.0: load each relying party's logout URI in a hidden iframe, wait
// until all have loaded or the bounded wait is over, then continue to the relying party's
// post_logout_redirect_uri, if one was given.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var main = document.getElementById("signed-out");
  var frames = document.querySelectorAll("iframe.logout-frame");
  var next = main.getAttribute("data-next");
  var timeout = parseInt(main.getAttribute("data-timeout"), 10) || 5000;
  var pending = frames.length;
  var finished = false;

  function finish() {
    if (finished) { return; }
    finished = true;
    document.getElementById("signed-out-status").textContent = "You are signed out.";
    if (next) { window.location.replace(next); }
  }

  Array.prototype.forEach.call(frames, function (frame) {
    var done = function () { pending -= 1; if (pending <= 0) { finish(); } };
    frame.addEventListener("load", done, { once: true });
    frame.addEventListener("error", done, { once: true });
    frame.src = frame.getAttribute("data-src");
  });
  if (pending === 0) { finish(); }
  window.setTimeout(finish, timeout);
});
