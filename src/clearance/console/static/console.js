// Clearance console: the little behaviour htmx does not give (no inline script anywhere; CSP script-src 'self').
(function () {
  "use strict";
  // Forms marked data-confirm ask before they are sent.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      ev.preventDefault();
      ev.stopPropagation();
    }
  }, true);
  // Picking a template loads it (the server fills the form).
  document.addEventListener("change", function (ev) {
    if (ev.target && ev.target.id === "template" && ev.target.value) {
      ev.target.form.submit();
    }
  });
  // An uploaded .cedar file is shown in the text box, so what is previewed is what is seen.
  document.addEventListener("change", function (ev) {
    var input = ev.target;
    if (!input || input.type !== "file" || input.name !== "file" || !input.files || !input.files[0]) return;
    var box = document.getElementById("d-text");
    if (!box) return;
    input.files[0].text().then(function (text) {
      box.value = text;
      input.value = "";
      box.dispatchEvent(new Event("keyup"));
    });
  });
  // The live stream keeps the newest 500 rows.
  document.addEventListener("htmx:sseMessage", function () {
    var body = document.getElementById("decisions");
    while (body && body.rows.length > 500) body.deleteRow(body.rows.length - 1);
  });
})();
