// The tenant phone site's behaviour (CSP script-src 'self': no inline script anywhere).
// 1. The result page (#order-live) follows its order: it polls data-status-url every 2 s and
//    updates the steps, the message and the balance until the order is done.
// 2. A pay form marked data-autosubmit is sent at once (a provider's form post); its button
//    stays for browsers without script.
// 3. Typing an amount picks "Other"; picking a preset empties the amount field.
(function () {
  "use strict";
  function follow(box) {
    var url = box.getAttribute("data-status-url");
    var tries = 0;
    function show(s) {
      var steps = { "step-paid": s.paid, "step-credited": s.credited, "step-power": s.power_on };
      Object.keys(steps).forEach(function (id) {
        var el = document.getElementById(id);
        if (el) { el.classList.toggle("done", !!steps[id]); }
      });
      var msg = document.getElementById("order-message");
      if (msg) { msg.textContent = s.message; msg.classList.toggle("bad", !!s.trouble); }
      var bal = document.getElementById("order-balance");
      if (bal) { bal.textContent = s.balance; }
    }
    function poll() {
      tries += 1;
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
        .then(function (s) { show(s); if (!s.done) { setTimeout(poll, 2000); } })
        .catch(function () { if (tries < 300) { setTimeout(poll, 5000); } });
    }
    poll();
  }
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("order-live");
    if (box) { follow(box); }
    var form = document.querySelector("form[data-autosubmit]");
    if (form) { form.submit(); }
    var amount = document.getElementById("f-amount");
    var other = document.getElementById("preset-other");
    if (amount && other) {
      amount.addEventListener("input", function () { if (amount.value) { other.checked = true; } });
      document.querySelectorAll('input[name="preset"]').forEach(function (r) {
        r.addEventListener("change", function () { if (r !== other && r.checked) { amount.value = ""; } });
      });
    }
  });
})();
