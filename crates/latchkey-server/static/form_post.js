// OAuth 2.0 Form Post Response Mode: submit the response to the client right away.
// An external script, so the page needs no inline script (strict CSP).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("form-post");
  if (form) { form.submit(); }
});
