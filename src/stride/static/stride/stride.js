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

  // A procedure type brings its usual image guidance, unless the user already chose one.
  function initGuidance() {
    const source = document.getElementById("default-guidance");
    const type = document.getElementById("id_procedure_type");
    const guidance = document.getElementById("id_image_guidance");
    if (!source || !type || !guidance) return;
    const defaults = JSON.parse(source.textContent);
    let touched = guidance.value !== "";
    guidance.addEventListener("change", function () { touched = true; });
    type.addEventListener("change", function () {
      if (!touched && defaults[type.value]) guidance.value = defaults[type.value];
    });
  }

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("DOMContentLoaded", initGuidance);
})();
