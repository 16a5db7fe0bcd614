// Receipt printouts (templates/receipts/printout.html): [data-print] buttons print the page;
// a page opened with data-autoprint on <body> (after the print was counted) prints itself
// once, then puts the focus on "next sale" so the cashier carries on from the keyboard.
(function () {
  function printNow() {
    window.print();
    var next = document.getElementById("print-next");
    if (next) { next.focus(); }
  }
  document.addEventListener("click", function (event) {
    var el = event.target.closest ? event.target.closest("[data-print]") : null;
    if (el) { event.preventDefault(); printNow(); }
  });
  document.addEventListener("DOMContentLoaded", function () {
    if (document.body.getAttribute("data-autoprint") === "1") { printNow(); }
  });
})();
