// The DNS checks on a domain's admin page: "Copy" puts the record to publish on the clipboard.
// A static file, not an inline script: the Content-Security-Policy forbids inline scripts.
"use strict";
document.addEventListener("click", function (event) {
  const button = event.target.closest("button.copy-record");
  if (!button) {
    return;
  }
  event.preventDefault();
  const done = function (text) {
    button.textContent = text;
    window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(button.dataset.copy).then(
      function () { done("Copied"); },
      function () { done("Select and copy"); }
    );
  } else {
    done("Select and copy");
  }
});
