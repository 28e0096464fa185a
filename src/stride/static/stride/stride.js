// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  // Injectate sub-forms: show only the fields of the chosen kind.
  function fitInjectate(subform, fieldsByKind) {
    const kind = subform.querySelector("select[name$='-kind']");
    if (!kind) return;
    const wanted = fieldsByKind[kind.value];
    subform.querySelectorAll("[data-field]").forEach(function (field) {
      const name = field.dataset.field;
      const always = name === "kind" || name === "DELETE";
      field.hidden = !always && wanted !== undefined && wanted.indexOf(name) === -1;
    });
  }

  function init() {
    const source = document.getElementById("injectate-fields");
    if (!source) return;
    const fieldsByKind = JSON.parse(source.textContent);
    document.querySelectorAll(".subform.injectate").forEach(function (subform) {
      fitInjectate(subform, fieldsByKind);
      subform.addEventListener("change", function (event) {
        if (event.target.name && event.target.name.endsWith("-kind")) fitInjectate(subform, fieldsByKind);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", init);
})();
