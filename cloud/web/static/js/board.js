// The meter board and a meter's panel (CSP script-src 'self': no inline script).
// 1. The count of ticked meters, kept while the board refreshes itself (htmx swaps the tiles;
//    the ticked boxes are preserved by id).
// 2. The action's own fields only: a tariff for "push tariff", amounts for "push settings".
// 3. Before sending: at least one meter, a reason for trips, closes and power modes, then a
//    confirmation naming the action and the number of meters.
(function () {
  "use strict";
  function form() { return document.getElementById("batch-form"); }
  function ticked() { return document.querySelectorAll("input.select-meter:checked").length; }
  function showCount() {
    var out = document.getElementById("selected-count");
    if (out) { out.textContent = String(ticked()); }
  }
  function showExtras() {
    var f = form();
    if (!f) { return; }
    var action = f.querySelector("[name=action]").value;
    f.querySelectorAll(".batch-extra").forEach(function (el) {
      el.classList.toggle("d-none", el.getAttribute("data-for") !== action);
    });
  }
  function total(f) {
    var live = document.getElementById("board-live");
    return Number((live && live.getAttribute("data-total")) || f.getAttribute("data-total") || 0);
  }
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches("input.select-meter")) { showCount(); }
    if (el.matches && el.matches("#batch-form [name=action]")) { showExtras(); }
  });
  document.addEventListener("htmx:afterSettle", showCount);
  document.addEventListener("submit", function (event) {
    var f = event.target;
    if (f.id !== "batch-form") { return; }
    var target = f.querySelector("[name=target]:checked") || f.querySelector("[name=target]");
    var n = f.getAttribute("data-single") === "yes" ? 1 :
      (target && target.value === "filtered" ? total(f) : ticked());
    if (n === 0) { event.preventDefault(); window.alert(f.getAttribute("data-none-text")); return; }
    var select = f.querySelector("[name=action]");
    var option = select.options[select.selectedIndex];
    var reason = f.querySelector("[name=reason]");
    if (option.getAttribute("data-dangerous") === "yes" && reason && !reason.value.trim()) {
      event.preventDefault();
      window.alert(f.getAttribute("data-reason-text"));
      reason.focus();
      return;
    }
    var question = f.getAttribute("data-confirm-text")
      .replace("{action}", option.textContent.trim()).replace("{n}", String(n));
    if (!window.confirm(question)) { event.preventDefault(); }
  }, true);
  document.addEventListener("DOMContentLoaded", function () { showCount(); showExtras(); });
})();
