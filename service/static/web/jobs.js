// The jobs page: keep the compare checkboxes ticked while htmx refreshes the table.
"use strict";
(function () {
  let ticked = new Set();
  document.body.addEventListener("htmx:beforeRequest", () => {
    ticked = new Set([...document.querySelectorAll("#job-table input[name=jobs]:checked")].map((b) => b.value));
  });
  document.body.addEventListener("htmx:afterSwap", () => {
    document.querySelectorAll("#job-table input[name=jobs]").forEach((b) => { b.checked = ticked.has(b.value); });
  });
})();
