// Progressive enhancement for Stride's cohort charts (stride.core.charts): every chart reads fully
// without this file. With it, a click on a legend entry (or Enter / Space on it) shows or hides that
// cohort, and the data point under the pointer is highlighted (its exact figures are in its tooltip).
(function () {
  "use strict";

  function seriesParts(svg, key) {
    return svg.querySelectorAll('.series[data-series="' + key + '"]');
  }

  function setShown(svg, item, shown) {
    const key = item.getAttribute("data-series");
    seriesParts(svg, key).forEach(function (part) {
      part.classList.toggle("is-off", !shown);
    });
    item.classList.toggle("is-off", !shown);
    item.setAttribute("aria-pressed", shown ? "true" : "false");
  }

  function toggle(svg, item) {
    setShown(svg, item, item.getAttribute("aria-pressed") === "false");
  }

  function enhance(svg) {
    if (svg.getAttribute("data-enhanced") === "true") return;
    svg.setAttribute("data-enhanced", "true");
    const items = svg.querySelectorAll(".legend-item[data-series]");
    if (items.length) {
      // Interactive now: an image's children are hidden from assistive technology, a group's are not.
      svg.setAttribute("role", "group");
      items.forEach(function (item) {
        const label = item.getAttribute("data-label") || "this cohort";
        item.setAttribute("tabindex", "0");
        item.setAttribute("role", "button");
        item.setAttribute("aria-pressed", "true");
        item.setAttribute("aria-label", "Show or hide " + label);
        item.addEventListener("click", function () {
          toggle(svg, item);
        });
        item.addEventListener("keydown", function (event) {
          if (event.key === "Enter" || event.key === " " || event.key === "Spacebar") {
            event.preventDefault();
            toggle(svg, item);
          }
        });
      });
    }
    let hovered = null;
    function clear() {
      if (hovered) hovered.classList.remove("is-hover");
      hovered = null;
    }
    svg.addEventListener("pointerover", function (event) {
      const datum = event.target.closest ? event.target.closest(".datum") : null;
      if (datum === hovered) return;
      clear();
      if (datum && svg.contains(datum)) {
        hovered = datum;
        datum.classList.add("is-hover");
      }
    });
    svg.addEventListener("pointerleave", clear);
  }

  function init(root) {
    (root || document).querySelectorAll("svg.stride-chart").forEach(enhance);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { init(document); });
  } else {
    init(document);
  }
  // Charts swapped in by htmx get the same behaviour.
  document.addEventListener("htmx:load", function (event) {
    const target = event.target;
    if (target && target.querySelectorAll) {
      if (target.matches && target.matches("svg.stride-chart")) enhance(target);
      init(target);
    }
  });
})();
