// The office shell's behaviour (CSP script-src 'self': no inline script anywhere).
// 1. htmx requests carry the CSRF token from <meta name="csrf-token">.
// 2. A form with data-confirm asks before it is sent (dangerous actions).
// 3. A <select data-autosubmit> sends its form when changed (list filters).
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { event.detail.headers["X-CSRFToken"] = meta.content; }
});
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) { event.preventDefault(); }
}, true);
document.addEventListener("change", function (event) {
  var el = event.target;
  if (el.matches && el.matches("select[data-autosubmit]") && el.form) { el.form.requestSubmit(); }
});
