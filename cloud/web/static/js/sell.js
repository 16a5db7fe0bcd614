// The counter's money forms (售电 / 退电): quick amounts, the live balance after, tendered and
// change, and the limits the sale will check. Display only: the server decides (the check step
// asks the sale service itself). Integers throughout (fen and micro-yuan), never a float sum.
(function () {
  var MICRO_PER_FEN = 10000;

  function toMicro(text) {
    // "1,234.5" -> 1234500000; null when it is not an amount.
    var t = (text || "").replace(/,/g, "").trim();
    var m = /^(\d{1,12})(?:\.(\d{1,2}))?$/.exec(t);
    if (!m) { return null; }
    var fen = parseInt(m[1], 10) * 100 + parseInt(((m[2] || "") + "00").slice(0, 2), 10);
    return fen * MICRO_PER_FEN;
  }

  function yuan(micro) {
    var negative = micro < 0;
    var fen = Math.floor((Math.abs(micro) + MICRO_PER_FEN / 2) / MICRO_PER_FEN);
    var whole = String(Math.floor(fen / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var cents = String(fen % 100);
    if (cents.length < 2) { cents = "0" + cents; }
    return (negative ? "-" : "") + whole + "." + cents;
  }

  function update(form) {
    var amountInput = form.querySelector("[name=amount]");
    var amount = toMicro(amountInput ? amountInput.value : "");
    var base = parseInt(form.getAttribute("data-base") || "0", 10);
    var sign = form.getAttribute("data-direction") === "out" ? -1 : 1;
    var after = form.querySelector("#balance-after");
    if (after) { after.textContent = amount === null ? "—" : "¥" + yuan(base + sign * amount); }
    form.querySelectorAll("[data-limit]").forEach(function (el) {
      var limit = parseInt(el.getAttribute("data-limit"), 10);
      el.hidden = !(amount !== null && amount > limit);
    });
    var method = form.querySelector("[name=method]");
    var group = form.querySelector("#tendered-group");
    if (group && method) { group.hidden = method.value !== "cash"; }
    var tendered = form.querySelector("[name=tendered]");
    var change = form.querySelector("#change");
    if (change && tendered) {
      var paid = toMicro(tendered.value);
      change.textContent = (paid === null || amount === null) ? "—" : "¥" + yuan(paid - amount);
    }
  }

  document.addEventListener("input", function (event) {
    var form = event.target.form;
    if (form && form.hasAttribute("data-money-form")) { update(form); }
  });
  document.addEventListener("change", function (event) {
    var form = event.target.form;
    if (form && form.hasAttribute("data-money-form")) { update(form); }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-amount]") : null;
    if (!button || !button.form) { return; }
    event.preventDefault();
    var input = button.form.querySelector("[name=amount]");
    input.value = button.getAttribute("data-amount");
    update(button.form);
    input.focus();
    input.select();
  });
  // The confirm form posts through htmx; a refusal (422) is a whole page to show, not an error.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr && event.detail.xhr.status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-money-form]").forEach(update);
  });
})();
