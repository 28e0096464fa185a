// The image viewer (imaging/detail.html): the stored measurements and marks drawn over the picture,
// and the tools a clinician measures, marks, calibrates and masks with. Without this file the page
// still shows the picture and the measurement table.
//
// Geometry is kept in the ORIGINAL image's pixels (x = column, y = row): the overlay's viewBox is
// the original's size, so a pointer position converts through the SVG's screen matrix whatever size
// the picture is shown at. Values are never computed here: the points go to the server, which
// answers with the stored measurement and its value as text.
(function () {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  // How many points each tool takes (a polygon: 3 or more, closed by the user).
  const POINTS = { line: 2, ratio: 4, angle: 3, ellipse: 3, polygon: Infinity, arrow: 2, circle: 2, text: 1, calibrate: 2 };
  const MEASURING = ["line", "ratio", "angle", "ellipse", "polygon"];
  const MARKS = ["arrow", "circle", "text"];
  const HINTS = {
    line: ["Click one end of the line (or drag from end to end).", "Click the other end."],
    ratio: [
      "Line A: click its first end.",
      "Line A: click its other end.",
      "Line B: click its first end.",
      "Line B: click its other end. The value is A ÷ B.",
    ],
    angle: [
      "Click a point on the first arm.",
      "Click the vertex.",
      "Click a point on the second arm.",
    ],
    ellipse: ["Click the centre.", "Click the end of the first axis.", "Click the end of the second axis."],
    polygon: [
      "Click the first corner of the outline.",
      "Click the next corner.",
      "Click the next corner.",
      "Click more corners; double-click, press Enter or click the first corner to close. Backspace removes the last.",
    ],
    arrow: ["Click where the arrow starts.", "Click where it points."],
    circle: ["Click the centre.", "Click a point on the circle."],
    text: ["Click where the text goes."],
    calibrate: [
      "Calibrate: click one end of something of known length (a ruler).",
      "Click its other end; you will then type its length.",
    ],
    mask: ["Drag rectangles over burned-in text (names, dates), then save the masks."],
  };
  const KIND_NAMES = { arrow: "Arrow", circle: "Circle", text: "Text" };
  const SNAP = 8; // screen pixels: two clicks this close are one point; this close to the first corner closes
  const DEBOUNCE_MS = 250;

  // ----------------------------------------------------------------------------- small helpers

  function svg(name, attrs, parent) {
    const node = document.createElementNS(SVG_NS, name);
    for (const key in attrs) {
      if (attrs[key] !== undefined && attrs[key] !== null) node.setAttribute(key, String(attrs[key]));
    }
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(name, attrs, text) {
    const node = document.createElement(name);
    for (const key in attrs || {}) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function distance(a, b) {
    return Math.hypot(b[0] - a[0], b[1] - a[1]);
  }

  function clamp(value, low, high) {
    return Math.min(Math.max(value, low), high);
  }

  function round(value, digits) {
    const f = Math.pow(10, digits);
    return Math.round(value * f) / f;
  }

  function pointList(points) {
    return points.map((p) => p[0].toFixed(2) + "," + p[1].toFixed(2)).join(" ");
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    try {
      const headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      return headers["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  async function post(url, body) {
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(body || {}),
      });
    } catch (error) {
      throw new Error("The server could not be reached; nothing was saved.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      if (data && data.error) throw new Error(data.error);
      if (response.status === 403) {
        throw new Error("The server refused this change: your session may have ended. Reload the page and try again.");
      }
      throw new Error("The server could not save this (error " + response.status + "); nothing was saved.");
    }
    return data || {};
  }

  function withId(url, id) {
    // The delete URLs carry 0 in place of the id: /measurements/0/delete
    return url.replace(/\/0(?=\/|$)/, "/" + encodeURIComponent(id));
  }

  function remember(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch (error) {
      /* private browsing: not remembered */
    }
  }

  function recall(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (error) {
      return null;
    }
  }

  // ----------------------------------------------------------------------------- shapes

  // The ellipse through centre c with the first axis ending at a and the second axis the
  // perpendicular distance of b from that axis (as the server measures it).
  function ellipseOf(points) {
    const [c, a, b] = points;
    const rx = distance(c, a);
    const ux = rx ? (a[0] - c[0]) / rx : 1;
    const uy = rx ? (a[1] - c[1]) / rx : 0;
    const ry = Math.abs((b[0] - c[0]) * -uy + (b[1] - c[1]) * ux);
    return { cx: c[0], cy: c[1], rx, ry, angle: (Math.atan2(uy, ux) * 180) / Math.PI, ux, uy };
  }

  function arrowHead(from, to, size) {
    const heading = Math.atan2(to[1] - from[1], to[0] - from[0]);
    const wings = [1, -1].map((s) => [
      to[0] - size * Math.cos(heading - s * 0.45),
      to[1] - size * Math.sin(heading - s * 0.45),
    ]);
    return [to, wings[0], wings[1]];
  }

  // An arc marking the angle at the vertex, r user units from it.
  function angleArc(first, vertex, second, r) {
    const a1 = Math.atan2(first[1] - vertex[1], first[0] - vertex[0]);
    const a2 = Math.atan2(second[1] - vertex[1], second[0] - vertex[0]);
    let sweep = a2 - a1;
    while (sweep <= -Math.PI) sweep += 2 * Math.PI;
    while (sweep > Math.PI) sweep -= 2 * Math.PI;
    const start = [vertex[0] + r * Math.cos(a1), vertex[1] + r * Math.sin(a1)];
    const end = [vertex[0] + r * Math.cos(a1 + sweep), vertex[1] + r * Math.sin(a1 + sweep)];
    return (
      "M" + start[0].toFixed(2) + " " + start[1].toFixed(2) +
      " A" + r.toFixed(2) + " " + r.toFixed(2) + " 0 0 " + (sweep > 0 ? 1 : 0) + " " +
      end[0].toFixed(2) + " " + end[1].toFixed(2)
    );
  }

  // Draw one shape into group g. u: image pixels per screen pixel (so handles keep their size).
  // cursor: where the pointer is, for a shape still being drawn.
  function drawShape(g, tool, points, u, options) {
    const opts = options || {};
    const pts = opts.cursor ? points.concat([opts.cursor]) : points.slice();
    const strokes = [];
    const line = (a, b, cls) => strokes.push(["line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: cls }]);
    const dots = [];
    if (!pts.length) return;
    const placed = points.length; // handles mark the points placed, not the pointer
    if (tool === "line" || tool === "calibrate" || tool === "ratio") {
      for (let i = 0; i + 1 < pts.length; i += 2) line(pts[i], pts[i + 1], tool === "calibrate" ? "dashed" : "");
      pts.forEach((p) => dots.push(p));
      if (tool === "ratio" && pts.length >= 2) {
        // A and B tell the two lines apart.
        opts.tags = [["A", pts[1]]].concat(pts.length >= 4 ? [["B", pts[3]]] : []);
      }
    } else if (tool === "angle") {
      strokes.push(["polyline", { points: pointList(pts) }]);
      if (pts.length === 3) {
        const [first, vertex, second] = pts;
        const arm1 = distance(first, vertex);
        const arm2 = distance(second, vertex);
        if (opts.deviation && arm1 > 0) {
          // Measured as 180° minus the angle: how far the second arm turns from the first arm's line,
          // drawn as that line carried on past the vertex.
          const reach = Math.max(Math.min(arm2, arm1), 30 * u);
          const ahead = [vertex[0] + ((vertex[0] - first[0]) / arm1) * reach, vertex[1] + ((vertex[1] - first[1]) / arm1) * reach];
          line(vertex, ahead, "thin dashed");
          const r = Math.min(28 * u, Math.min(reach, arm2) * 0.6);
          if (r > 0) strokes.push(["path", { d: angleArc(ahead, vertex, second, r), class: "thin" }]);
        } else {
          const r = Math.min(24 * u, Math.min(arm1, arm2) * 0.45);
          if (r > 0) strokes.push(["path", { d: angleArc(first, vertex, second, r), class: "thin" }]);
        }
      }
      pts.forEach((p) => dots.push(p));
    } else if (tool === "ellipse") {
      if (pts.length >= 2) line(pts[0], pts[1], "thin dashed");
      if (pts.length === 3) {
        const e = ellipseOf(pts);
        strokes.push([
          "ellipse",
          {
            cx: e.cx, cy: e.cy, rx: Math.max(e.rx, 0.01), ry: Math.max(e.ry, 0.01),
            transform: "rotate(" + e.angle.toFixed(3) + " " + e.cx.toFixed(2) + " " + e.cy.toFixed(2) + ")",
          },
        ]);
        // The second semi-axis, on the side of the axis where its end was clicked.
        const side = Math.sign((pts[2][0] - e.cx) * -e.uy + (pts[2][1] - e.cy) * e.ux) || 1;
        line([e.cx, e.cy], [e.cx - e.uy * e.ry * side, e.cy + e.ux * e.ry * side], "thin dashed");
      }
      pts.forEach((p) => dots.push(p));
    } else if (tool === "polygon") {
      if (opts.draft) {
        strokes.push(["polyline", { points: pointList(pts) }]);
        if (pts.length >= 3) line(pts[pts.length - 1], pts[0], "thin dashed");
      } else {
        strokes.push(["polygon", { points: pointList(pts) }]);
      }
      if (opts.draft) pts.forEach((p) => dots.push(p));
    } else if (tool === "arrow") {
      if (pts.length === 2) {
        line(pts[0], pts[1], "");
        strokes.push(["polygon", { points: pointList(arrowHead(pts[0], pts[1], 14 * u)), class: "filled" }]);
      } else {
        dots.push(pts[0]);
      }
    } else if (tool === "circle") {
      if (pts.length === 2) strokes.push(["circle", { cx: pts[0][0], cy: pts[0][1], r: Math.max(distance(pts[0], pts[1]), 0.01) }]);
      dots.push(pts[0]);
    } else if (tool === "text") {
      dots.push(pts[0]);
    } else if (tool === "mask") {
      const [a, b] = pts;
      if (b) {
        strokes.push([
          "rect",
          { x: Math.min(a[0], b[0]), y: Math.min(a[1], b[1]), width: Math.abs(b[0] - a[0]), height: Math.abs(b[1] - a[1]), class: "mask-box" },
        ]);
      }
    }
    // A dark halo under every stroke keeps amber and blue legible over bright and dark images alike.
    for (const [name, attrs] of strokes) svg(name, Object.assign({}, attrs, { class: "halo " + (attrs.class || "") }), g);
    for (const [name, attrs] of strokes) svg(name, Object.assign({}, attrs, { class: "ink " + (attrs.class || "") }), g);
    for (const p of dots) {
      if (opts.cursor && p === opts.cursor && pts.indexOf(p) >= placed) continue;
      svg("circle", { cx: p[0], cy: p[1], r: 3 * u, class: "handle" }, g);
    }
    for (const [tag, at] of opts.tags || []) {
      const t = svg("text", { x: at[0] + 6 * u, y: at[1] + 14 * u, class: "label tag", "font-size": 12 * u, "stroke-width": 3 * u }, g);
      t.textContent = tag;
    }
  }

  // ----------------------------------------------------------------------------- the viewer

  function Viewer(root, state) {
    const image = state.image;
    const urls = state.urls || {};
    const W = image.width;
    const H = image.height;
    const picture = byId("viewer-picture");
    const overlay = byId("viewer-overlay");
    const stage = byId("viewer-stage");
    const tools = byId("viewer-tools");
    const hint = byId("viewer-hint");
    const alertBox = byId("viewer-error");
    const table = byId("measurement-table");
    const tbody = table ? table.tBodies[0] : null;
    const markList = byId("mark-list");
    const types = state.types || [];
    const siteNames = new Map((state.sites || []).map((s) => [s.code, s.name]));
    const userName = root.getAttribute("data-user") || "";

    let measurements = (state.measurements || []).slice();
    let annotations = (state.annotations || []).slice();
    let frame = image.frame || 0;
    let windowing = null; // [centre, width] chosen on the sliders; null: the image's default
    let version = 0; // bumps when the masks change, so the picture is fetched anew
    let tool = null;
    let points = [];
    let cursor = null;
    let pointerDown = null;
    let busy = false;
    let masks = null; // the rectangles being edited in mask mode
    let hot = null; // the measurement id under the pointer or the table row

    // ---- the picture

    let wantedSrc = picture.getAttribute("src");
    let reloadTimer = null;

    function pictureUrl() {
      const query = new URLSearchParams({ size: "web", frame: String(frame) });
      if (windowing) {
        query.set("wc", String(round(windowing[0], 3)));
        query.set("ww", String(round(windowing[1], 3)));
      }
      if (version) query.set("v", String(version));
      return urls.render + "?" + query.toString();
    }

    function reloadPicture(now) {
      window.clearTimeout(reloadTimer);
      const go = () => {
        const src = pictureUrl();
        if (src === wantedSrc) return;
        wantedSrc = src;
        stage.classList.add("is-loading");
        const next = new Image();
        next.onload = () => {
          if (wantedSrc !== src) return; // a later request is on its way
          picture.src = src;
          stage.classList.remove("is-loading");
        };
        next.onerror = () => {
          if (wantedSrc !== src) return;
          stage.classList.remove("is-loading");
          showError("The picture could not be rendered with these settings.");
        };
        next.src = src;
      };
      if (now) go();
      else reloadTimer = window.setTimeout(go, DEBOUNCE_MS);
    }

    // ---- messages

    function showError(message) {
      alertBox.textContent = message || "";
      if (message) status.hidden = false;
      if (message && tool) bringIntoView();
    }

    function setHint(text) {
      hint.textContent = text || "";
    }

    function toolHint() {
      if (!tool) return state.canMeasure ? "Choose a tool to measure or mark the image." : "";
      const steps = HINTS[tool] || [""];
      const step = steps[Math.min(points.length, steps.length - 1)];
      const total = POINTS[tool];
      const progress = Number.isFinite(total) && total > 1 ? " Point " + (points.length + 1) + " of " + total + " ·" : "";
      return step + progress + " Esc cancels.";
    }

    // ---- keeping the picture in view

    const status = byId("viewer-status");

    // When the picture is cut off by the window's edge or hidden under the (sticky) status strip,
    // scroll so the strip meets the top of the window: the picture is sized to fit right under it.
    function bringIntoView() {
      const strip = status.getBoundingClientRect();
      const picture = stage.getBoundingClientRect();
      if (picture.top >= strip.bottom - 1 && picture.bottom <= window.innerHeight + 1) return;
      const offset = tools.getBoundingClientRect().bottom; // where the strip starts when not stuck
      if (Math.abs(offset) > 1) window.scrollBy({ top: offset, behavior: "instant" });
    }

    // ---- coordinates

    // Image pixels per screen pixel, for handles and labels that keep their size on screen.
    function unit() {
      const box = overlay.getBoundingClientRect();
      return box.width > 0 ? W / box.width : 1;
    }

    function toImage(event) {
      const ctm = overlay.getScreenCTM();
      if (!ctm) return null;
      const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(ctm.inverse());
      return [round(clamp(p.x, 0, W), 2), round(clamp(p.y, 0, H), 2)];
    }

    // ---- the measurement type and its details

    const typeSelect = byId("vt-type");
    const siteSelect = byId("vt-site");
    const noteInput = byId("vt-note");
    const qualifierBox = byId("vt-qualifiers");
    const typeNote = byId("vt-type-note");
    const gradeBox = byId("vt-grade");
    const gradeSelect = byId("vt-grade-value");
    const drawTools = byId("vt-draw-tools");
    const typeKey = "stride.imaging.type." + (image.modality || "");

    function currentType() {
      if (!typeSelect) return null;
      return types.find((t) => t.code === typeSelect.value) || null;
    }

    function isGrade(type) {
      return type && (type.unit === "grade" || (type.tools || []).indexOf("grade") !== -1);
    }

    function fillTypes() {
      if (!typeSelect) return;
      const groups = [
        ["For this image (" + (image.modality || "any") + ")", types.filter((t) => t.fits && !t.free)],
        ["Other modalities", types.filter((t) => !t.fits && !t.free)],
        ["Free measurements", types.filter((t) => t.free)],
      ];
      for (const [label, members] of groups) {
        if (!members.length) continue;
        const group = html("optgroup", { label });
        for (const t of members) group.appendChild(html("option", { value: t.code }, t.name));
        typeSelect.appendChild(group);
      }
      const remembered = recall(typeKey);
      if (remembered && types.some((t) => t.code === remembered)) typeSelect.value = remembered;
      typeSelect.addEventListener("change", () => {
        remember(typeKey, typeSelect.value);
        typeChanged();
      });
      typeChanged();
    }

    function typeChanged() {
      const type = currentType();
      if (!type) return;
      const grade = isGrade(type);
      const allowed = type.tools || [];
      // Drawing tools: only those the type is measured with.
      drawTools.hidden = grade;
      drawTools.querySelectorAll("button[data-tool]").forEach((button) => {
        const ok = allowed.indexOf(button.dataset.tool) !== -1;
        button.disabled = !ok;
        button.title = ok ? "" : type.name + " is measured with the " + allowed.join(" or ") + " tool";
      });
      if (tool && MEASURING.indexOf(tool) !== -1 && (grade || allowed.indexOf(tool) === -1)) {
        setTool(grade ? null : allowed[0] || null);
      }
      // Grades: a select, nothing drawn.
      gradeBox.hidden = !grade;
      gradeSelect.replaceChildren(html("option", { value: "" }, "Choose a grade"));
      for (const g of type.grades || []) gradeSelect.appendChild(html("option", { value: String(g.value) }, g.label));
      // Qualifiers.
      qualifierBox.replaceChildren();
      for (const q of type.qualifiers || []) {
        const label = html("label", { class: "tool-field" });
        label.appendChild(html("span", {}, q.name));
        const select = html("select", { "data-qualifier": q.code });
        select.appendChild(html("option", { value: "" }, "—"));
        for (const option of q.options || []) select.appendChild(html("option", { value: option }, option));
        label.appendChild(select);
        qualifierBox.appendChild(label);
      }
      qualifierBox.hidden = !(type.qualifiers || []).length;
      // Sites: the type's own when it has some, else every site.
      const previous = siteSelect.value;
      const codes = (type.sites || []).length ? type.sites : Array.from(siteNames.keys());
      siteSelect.replaceChildren(html("option", { value: "" }, "The image's site"));
      for (const code of codes) siteSelect.appendChild(html("option", { value: code }, siteNames.get(code) || code));
      if (codes.indexOf(previous) !== -1) siteSelect.value = previous;
      typeNote.textContent = type.note || "";
      typeNote.hidden = !type.note;
    }

    function details() {
      const type = currentType();
      const qualifiers = {};
      qualifierBox.querySelectorAll("select[data-qualifier]").forEach((select) => {
        if (select.value) qualifiers[select.dataset.qualifier] = select.value;
      });
      return {
        type: type ? type.code : "",
        qualifiers,
        site: siteSelect.value,
        note: noteInput.value.trim(),
        frame,
      };
    }

    // ---- tools

    const toolButtons = Array.from(tools.querySelectorAll("button[data-tool]"));

    function setTool(name) {
      cancelDraft();
      if (tool === "mask" && name !== "mask") closeMasks();
      tool = name;
      toolButtons.forEach((button) => button.setAttribute("aria-pressed", String(button.dataset.tool === tool)));
      overlay.classList.toggle("is-drawing", !!tool);
      if (tool === "mask") openMasks();
      setHint(toolHint());
      render();
      if (tool) bringIntoView();
    }

    toolButtons.forEach((button) => {
      button.addEventListener("click", () => {
        showError("");
        setTool(tool === button.dataset.tool ? null : button.dataset.tool);
      });
    });

    function cancelDraft() {
      points = [];
      cursor = null;
      pointerDown = null;
      closePrompt();
      renderDraft();
      setHint(toolHint());
    }

    function addPoint(p) {
      if (!p || busy || promptOpen()) return;
      const u = unit();
      if (points.length && distance(points[points.length - 1], p) < SNAP * u) return; // a double click's second press
      if (tool === "polygon" && points.length >= 3 && distance(points[0], p) < SNAP * u) {
        finish();
        return;
      }
      points.push(p);
      setHint(toolHint());
      if (points.length >= POINTS[tool]) finish();
      else renderDraft();
    }

    function finish() {
      cursor = null;
      if (tool === "polygon" && points.length < 3) {
        setHint("An outline needs at least 3 corners. " + toolHint());
        return;
      }
      renderDraft();
      if (MEASURING.indexOf(tool) !== -1) saveMeasurement();
      else if (tool === "arrow" || tool === "circle") saveMark(tool, "");
      else if (tool === "text") askText();
      else if (tool === "calibrate") askLength();
    }

    // ---- the prompt: a text mark's words, a calibration's known length

    const prompt = byId("viewer-prompt");
    const promptLabel = byId("viewer-prompt-label");
    const promptInput = byId("viewer-prompt-input");
    const promptOk = byId("viewer-prompt-ok");
    let promptAction = null;

    function promptOpen() {
      return prompt && !prompt.hidden;
    }

    function openPrompt(label, button, type, action) {
      promptLabel.textContent = label;
      promptOk.textContent = button;
      promptInput.type = type;
      promptInput.value = "";
      if (type === "number") {
        promptInput.min = "0";
        promptInput.step = "any";
        promptInput.inputMode = "decimal";
      } else {
        promptInput.removeAttribute("min");
        promptInput.removeAttribute("step");
        promptInput.inputMode = "text";
      }
      promptAction = action;
      prompt.hidden = false;
      promptInput.focus({ preventScroll: true });
      setHint("");
      bringIntoView();
    }

    function closePrompt() {
      if (!prompt || prompt.hidden) return;
      const hadFocus = prompt.contains(document.activeElement);
      prompt.hidden = true;
      promptAction = null;
      if (hadFocus) overlay.focus({ preventScroll: true });
    }

    if (prompt) {
      promptOk.addEventListener("click", () => {
        if (promptAction) promptAction(promptInput.value);
      });
      promptInput.addEventListener("keydown", (event) => {
        if (event.key === "Enter") {
          event.preventDefault();
          if (promptAction) promptAction(promptInput.value);
        } else if (event.key === "Escape") {
          event.preventDefault();
          event.stopPropagation();
          cancelDraft();
        }
      });
      byId("viewer-prompt-cancel").addEventListener("click", cancelDraft);
    }

    function askText() {
      openPrompt("Text of the mark", "Place text", "text", (value) => {
        if (!value.trim()) {
          showError("Write the text to place.");
          promptInput.focus();
          return;
        }
        saveMark("text", value.trim());
      });
    }

    function askLength() {
      openPrompt("Known length of the line (mm)", "Calibrate", "number", (value) => saveCalibration(value));
    }

    // ---- saving

    async function send(url, body) {
      busy = true;
      overlay.classList.add("is-busy");
      showError("");
      try {
        return await post(url, body);
      } finally {
        busy = false;
        overlay.classList.remove("is-busy");
      }
    }

    function failed(error) {
      // Nothing is kept of a refused drawing.
      cancelDraft();
      showError(error.message);
    }

    async function saveMeasurement() {
      const body = Object.assign(details(), { tool, points: points.map((p) => [p[0], p[1]]) });
      setHint("Saving…");
      try {
        const saved = await send(urls.measure, body);
        added(saved);
        cancelDraft();
        setHint("Saved: " + (saved.name || saved.type) + ", " + saved.text + ". " + toolHint());
      } catch (error) {
        failed(error);
      }
    }

    async function saveGrade() {
      const type = currentType();
      if (!gradeSelect.value) {
        showError("Choose a grade first.");
        gradeSelect.focus();
        return;
      }
      const body = Object.assign(details(), { tool: "grade", value: Number(gradeSelect.value), points: [] });
      try {
        const saved = await send(urls.measure, body);
        added(saved);
        gradeSelect.value = "";
        setHint("Saved: " + (saved.name || (type ? type.name : "grade")) + ", " + saved.text + ".");
      } catch (error) {
        showError(error.message);
      }
    }

    async function saveMark(kind, text) {
      const body = { kind, points: points.map((p) => [p[0], p[1]]), text, frame };
      try {
        const saved = await send(urls.annotate, body);
        annotations.push(saved);
        addMarkItem(saved);
        cancelDraft();
        render();
      } catch (error) {
        failed(error);
      }
    }

    async function saveCalibration(value) {
      const known = Number(String(value).replace(",", "."));
      if (!String(value).trim() || !Number.isFinite(known)) {
        showError("Give the known length in millimetres, as a number.");
        promptInput.focus();
        return;
      }
      try {
        const data = await send(urls.calibrate, { points: points.map((p) => [p[0], p[1]]), known_mm: known });
        Object.assign(image, data.image || {});
        showCalibration();
        cancelDraft();
        setTool(null);
        setHint("Calibrated. New measurements are in millimetres; those taken before stay as they were measured.");
      } catch (error) {
        failed(error);
      }
    }

    function showCalibration() {
      const fact = byId("calibration-fact");
      if (!fact || !image.spacing) return;
      const source = String(image.spacingSource || "").startsWith("dicom:") ? "from the DICOM header" : "calibrated by hand";
      fact.textContent = image.spacing[1].toFixed(4) + " mm per pixel (" + source + ")";
    }

    // ---- the measurement table and the list of marks

    function siteName(code) {
      return code ? siteNames.get(code) || code : "—";
    }

    function detailText(m) {
      const parts = Object.keys(m.qualifiers || {}).map((k) => k + ": " + m.qualifiers[k]);
      let text = parts.join("; ");
      if (m.frame !== image.frame) text += " (frame " + (m.frame + 1) + ")";
      if (m.note) text += " " + m.note;
      return text.trim();
    }

    // The table says which measurements were taken on another frame than the one measured.
    function refreshDetails() {
      if (!tbody) return;
      for (const row of Array.from(tbody.rows)) {
        const m = measurements.find((x) => String(x.id) === row.getAttribute("data-id"));
        if (m && row.cells[4]) row.cells[4].textContent = detailText(m);
      }
    }

    function added(m) {
      measurements.push(m);
      if (tbody) {
        const empty = tbody.querySelector("tr.empty");
        if (empty) empty.remove();
        const row = html("tr", { "data-id": String(m.id) });
        const cells = [String(measurements.length), m.name || m.type, m.text, siteName(m.site), detailText(m), userName];
        for (const text of cells) row.appendChild(html("td", {}, text));
        const actions = html("td", { class: "row-tools" });
        row.appendChild(actions);
        tbody.appendChild(row);
        enhanceRow(row);
        row.classList.add("is-new");
        window.setTimeout(() => row.classList.remove("is-new"), 1600);
      }
      render();
    }

    function confirmButton(label, onConfirm) {
      const button = html("button", { type: "button", class: "small outline secondary delete" }, label);
      let armed = null;
      button.addEventListener("click", () => {
        if (!armed) {
          button.textContent = "Confirm delete";
          button.classList.add("is-armed");
          armed = window.setTimeout(() => {
            armed = null;
            button.textContent = label;
            button.classList.remove("is-armed");
          }, 4000);
          return;
        }
        window.clearTimeout(armed);
        armed = null;
        button.disabled = true;
        onConfirm().finally(() => {
          button.disabled = false;
          button.textContent = label;
          button.classList.remove("is-armed");
        });
      });
      return button;
    }

    function enhanceRow(row) {
      const id = Number(row.getAttribute("data-id"));
      row.addEventListener("pointerenter", () => setHot(id));
      row.addEventListener("pointerleave", () => setHot(null));
      const cell = row.cells[row.cells.length - 1];
      if (!state.canMeasure || !cell || cell.querySelector("button")) return;
      const m = measurements.find((x) => x.id === id);
      const what = m ? (m.name || m.type) + " " + m.text : "measurement";
      const button = confirmButton("Delete", () => deleteMeasurement(id, row));
      button.setAttribute("aria-label", "Delete " + what);
      cell.appendChild(button);
    }

    function renumber() {
      if (!tbody) return;
      Array.from(tbody.rows).forEach((row, index) => {
        if (!row.classList.contains("empty")) row.cells[0].textContent = String(index + 1);
      });
      if (!tbody.rows.length) {
        const row = html("tr", { class: "empty" });
        row.appendChild(html("td", { colspan: "7", class: "muted" }, "No measurements yet."));
        tbody.appendChild(row);
      }
    }

    async function deleteMeasurement(id, row) {
      try {
        await send(withId(urls.deleteMeasurement, id), {});
      } catch (error) {
        showError(error.message);
        return;
      }
      measurements = measurements.filter((m) => m.id !== id);
      row.remove();
      renumber();
      render();
    }

    function markText(a) {
      let text = KIND_NAMES[a.kind] || a.kind;
      if (a.text) text += ": “" + a.text + "”";
      if (a.frame !== image.frame) text += " (frame " + (a.frame + 1) + ")";
      return text;
    }

    function enhanceMark(item) {
      if (!state.canMeasure || item.querySelector("button")) return;
      const id = Number(item.getAttribute("data-id"));
      const a = annotations.find((x) => x.id === id);
      const button = confirmButton("Delete", () => deleteMark(id, item));
      button.setAttribute("aria-label", "Delete " + (a ? markText(a) : "mark"));
      item.appendChild(button);
    }

    function addMarkItem(a) {
      if (!markList) return;
      const item = html("li", { "data-id": String(a.id) });
      item.appendChild(html("span", {}, markText(a)));
      markList.appendChild(item);
      enhanceMark(item);
      byId("marks-section").hidden = false;
    }

    async function deleteMark(id, item) {
      try {
        await send(withId(urls.deleteAnnotation, id), {});
      } catch (error) {
        showError(error.message);
        return;
      }
      annotations = annotations.filter((a) => a.id !== id);
      item.remove();
      if (markList && !markList.children.length) byId("marks-section").hidden = true;
      render();
    }

    // ---- masks over burned-in text

    const maskPanel = byId("viewer-masks");

    function openMasks() {
      masks = (image.masks || []).map((box) => box.slice());
      if (maskPanel) maskPanel.hidden = false;
      maskCount();
    }

    function closeMasks() {
      masks = null;
      if (maskPanel) maskPanel.hidden = true;
    }

    function maskCount() {
      const count = byId("viewer-masks-count");
      if (count && masks) count.textContent = masks.length + (masks.length === 1 ? " rectangle" : " rectangles");
    }

    if (maskPanel) {
      byId("viewer-masks-undo").addEventListener("click", () => {
        if (masks && masks.length) masks.pop();
        maskCount();
        render();
      });
      byId("viewer-masks-clear").addEventListener("click", () => {
        if (masks) masks.length = 0;
        maskCount();
        render();
      });
      byId("viewer-masks-cancel").addEventListener("click", () => setTool(null));
      byId("viewer-masks-save").addEventListener("click", async () => {
        try {
          const data = await send(urls.settings, { masks: masks || [] });
          Object.assign(image, data.image || {});
          version += 1;
          reloadPicture(true);
          setTool(null);
          setHint("Masks saved: they are blanked in every view and download of this image.");
        } catch (error) {
          showError(error.message);
        }
      });
    }

    // ---- pointer and keyboard

    overlay.addEventListener("pointerdown", (event) => {
      if (!tool || event.button !== 0 || busy || promptOpen()) return;
      event.preventDefault();
      // Keys now belong to the drawing (Enter closes an outline), not to the tool button last pressed.
      overlay.focus({ preventScroll: true });
      overlay.setPointerCapture(event.pointerId);
      const p = toImage(event);
      pointerDown = { x: event.clientX, y: event.clientY, p };
      showError("");
      if (tool === "mask") {
        points = [p];
        return;
      }
      addPoint(p);
    });

    overlay.addEventListener("pointermove", (event) => {
      if (!tool || busy || promptOpen()) return;
      cursor = toImage(event);
      if (tool === "mask" && !pointerDown) return;
      if (points.length) renderDraft();
    });

    overlay.addEventListener("pointerup", (event) => {
      if (!pointerDown) return;
      const start = pointerDown;
      pointerDown = null;
      const moved = Math.hypot(event.clientX - start.x, event.clientY - start.y) > SNAP;
      const p = toImage(event);
      if (tool === "mask") {
        if (moved && masks) {
          // Whole pixels, rounded outwards: a mask covers at least what was dragged over.
          const x0 = Math.floor(Math.min(start.p[0], p[0]));
          const y0 = Math.floor(Math.min(start.p[1], p[1]));
          const x1 = Math.min(Math.ceil(Math.max(start.p[0], p[0])), W);
          const y1 = Math.min(Math.ceil(Math.max(start.p[1], p[1])), H);
          masks.push([x0, y0, x1 - x0, y1 - y0]);
          maskCount();
        }
        points = [];
        cursor = null;
        render();
        return;
      }
      // A drag places a second point where it ends.
      if (moved && points.length && points.length < POINTS[tool] && !promptOpen()) addPoint(p);
    });

    overlay.addEventListener("pointercancel", () => {
      pointerDown = null;
    });

    overlay.addEventListener("pointerleave", () => {
      if (!pointerDown && tool && tool !== "mask") {
        cursor = null;
        renderDraft();
      }
    });

    overlay.addEventListener("dblclick", (event) => {
      if (tool === "polygon" && points.length >= 3) {
        event.preventDefault();
        finish();
      }
    });

    document.addEventListener("keydown", (event) => {
      const target = event.target;
      const typing = target && target.closest && target.closest("input, select, textarea");
      if (event.key === "Escape") {
        if (promptOpen() || points.length) cancelDraft();
        else if (tool) setTool(null);
        else return;
        event.preventDefault();
        return;
      }
      if (typing || !tool) return;
      if (event.key === "Enter" && tool === "polygon" && points.length >= 3 && !(target && target.closest("button"))) {
        event.preventDefault();
        finish();
      } else if (event.key === "Backspace" && points.length && tool !== "mask") {
        event.preventDefault();
        points.pop();
        setHint(toolHint());
        renderDraft();
      }
    });

    // ---- view controls

    const showMeasurements = byId("vt-show-measurements");
    const showMarks = byId("vt-show-marks");
    [showMeasurements, showMarks].forEach((box) => box && box.addEventListener("change", render));

    const wc = byId("vt-wc");
    const ww = byId("vt-ww");
    const wcNumber = byId("vt-wc-number");
    const wwNumber = byId("vt-ww-number");

    function windowDefaults() {
      return image.window && image.window[1] > 0 ? image.window.slice() : null;
    }

    function setWindowRanges(centre, width) {
      const span = Math.max(width, 1);
      wc.min = String(round(centre - 2 * span, 2));
      wc.max = String(round(centre + 2 * span, 2));
      ww.min = String(round(Math.max(span / 50, 1), 2));
      ww.max = String(round(span * 4, 2));
      wc.step = ww.step = span > 50 ? "1" : "any";
    }

    function showWindow(centre, width) {
      // Sliders grow to hold a typed value beyond their range.
      if (centre < Number(wc.min) || centre > Number(wc.max) || width > Number(ww.max)) setWindowRanges(centre, width);
      wc.value = String(centre);
      ww.value = String(width);
      wcNumber.value = String(round(centre, 2));
      wwNumber.value = String(round(width, 2));
    }

    function initWindow() {
      if (!wc || !ww) return;
      const start = windowDefaults() || [2048, 4096];
      setWindowRanges(start[0], start[1]);
      showWindow(start[0], start[1]);
      const changed = (centre, width) => {
        if (!Number.isFinite(centre) || !Number.isFinite(width) || width <= 0) return;
        windowing = [centre, width];
        reloadPicture(false);
      };
      wc.addEventListener("input", () => {
        wcNumber.value = String(round(Number(wc.value), 2));
        changed(Number(wc.value), Number(ww.value));
      });
      ww.addEventListener("input", () => {
        wwNumber.value = String(round(Number(ww.value), 2));
        changed(Number(wc.value), Number(ww.value));
      });
      const typed = () => {
        const centre = Number(wcNumber.value);
        const width = Number(wwNumber.value);
        if (wcNumber.value === "" || wwNumber.value === "" || !Number.isFinite(centre) || !(width > 0)) return;
        showWindow(centre, width);
        changed(centre, width);
      };
      wcNumber.addEventListener("input", typed);
      wwNumber.addEventListener("input", typed);
      const reset = byId("vt-window-reset");
      reset.addEventListener("click", () => {
        windowing = null;
        const back = windowDefaults() || [2048, 4096];
        setWindowRanges(back[0], back[1]);
        showWindow(back[0], back[1]);
        reloadPicture(true);
        setHint(windowDefaults() ? "Window back to this image's default." : "Window back to the full range of the pixels.");
      });
      const save = byId("vt-window-save");
      if (save) {
        save.addEventListener("click", async () => {
          const chosen = windowing || [Number(wc.value), Number(ww.value)];
          try {
            const data = await send(urls.settings, { window: chosen });
            Object.assign(image, data.image || {});
            setHint("Window saved as this image's default: centre " + round(chosen[0], 2) + ", width " + round(chosen[1], 2) + ".");
          } catch (error) {
            showError(error.message);
          }
        });
      }
    }

    const frameSlider = byId("vt-frame");
    const frameShown = byId("vt-frame-shown");
    const frameSave = byId("vt-frame-save");

    function showFrame() {
      if (frameShown) frameShown.textContent = frame + 1 + " of " + image.frames;
      if (frameSave) {
        const chosen = frame === image.frame;
        frameSave.disabled = chosen;
        frameSave.textContent = chosen ? "Measured frame" : "Measure this frame";
      }
    }

    function initFrames() {
      if (!frameSlider) return;
      frameSlider.value = String(frame);
      showFrame();
      frameSlider.addEventListener("input", () => {
        frame = clamp(Math.round(Number(frameSlider.value)), 0, image.frames - 1);
        cancelDraft();
        showFrame();
        render();
        reloadPicture(false);
      });
      if (frameSave) {
        frameSave.addEventListener("click", async () => {
          try {
            const data = await send(urls.settings, { frame });
            Object.assign(image, data.image || {});
            showFrame();
            refreshDetails();
            setHint("Frame " + (frame + 1) + " is now the one shown and measured.");
          } catch (error) {
            showError(error.message);
          }
        });
      }
    }

    // ---- drawing the overlay

    function deviationType(code) {
      const type = types.find((t) => t.code === code);
      return !!type && type.angle === "deviation";
    }

    const layers = {
      measurements: svg("g", { class: "layer measurements" }, overlay),
      marks: svg("g", { class: "layer marks" }, overlay),
      masks: svg("g", { class: "layer masks" }, overlay),
      draft: svg("g", { class: "layer draft" }, overlay),
      labels: svg("g", { class: "layer labels" }, overlay),
    };

    function setHot(id) {
      hot = id;
      overlay.querySelectorAll("[data-measurement]").forEach((node) => {
        node.classList.toggle("is-hot", Number(node.getAttribute("data-measurement")) === id);
      });
      if (tbody) {
        Array.from(tbody.rows).forEach((row) => row.classList.toggle("is-hot", Number(row.getAttribute("data-id")) === id));
      }
    }

    // Where a shape's label goes: a point on the shape and the direction to move away from it.
    // A line's beside its middle, an angle's outside the vertex, an area's above the outline.
    function labelSpot(tool, pts, deviation) {
      if ((tool === "line" || tool === "ratio" || tool === "calibrate") && pts.length >= 2) {
        const [a, b] = pts;
        const length = distance(a, b) || 1;
        let normal = [-(b[1] - a[1]) / length, (b[0] - a[0]) / length];
        if (normal[1] > 1e-9 || (Math.abs(normal[1]) <= 1e-9 && normal[0] < 0)) normal = [-normal[0], -normal[1]];
        return { at: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2], dir: normal };
      }
      if (tool === "angle" && pts.length === 3 && deviation) {
        // Beside the first arm carried on past the vertex, on the side away from the second arm.
        const [p, v, q] = pts;
        const d1 = distance(p, v) || 1;
        const ahead = [(v[0] - p[0]) / d1, (v[1] - p[1]) / d1];
        let normal = [-ahead[1], ahead[0]];
        if (normal[0] * (q[0] - v[0]) + normal[1] * (q[1] - v[1]) > 0) normal = [-normal[0], -normal[1]];
        const reach = Math.min(distance(q, v), d1) * 0.5;
        return { at: [v[0] + ahead[0] * reach, v[1] + ahead[1] * reach], dir: normal };
      }
      if (tool === "angle" && pts.length === 3) {
        const [p, v, q] = pts;
        const d1 = distance(p, v) || 1;
        const d2 = distance(q, v) || 1;
        const away = [-((p[0] - v[0]) / d1 + (q[0] - v[0]) / d2), -((p[1] - v[1]) / d1 + (q[1] - v[1]) / d2)];
        const size = Math.hypot(away[0], away[1]);
        const dir = size > 1e-6 ? [away[0] / size, away[1] / size] : [-(p[1] - v[1]) / d1, (p[0] - v[0]) / d1];
        return { at: v, dir };
      }
      if (tool === "ellipse" && pts.length === 3) {
        const e = ellipseOf(pts);
        const half = Math.hypot(e.rx * e.uy, e.ry * e.ux);
        return { at: [e.cx, e.cy - half], dir: [0, -1] };
      }
      const xs = pts.map((p) => p[0]);
      const ys = pts.map((p) => p[1]);
      return { at: [(Math.min(...xs) + Math.max(...xs)) / 2, Math.min(...ys)], dir: [0, -1] };
    }

    function overlapsAny(box, placed) {
      return placed.some((o) => box.x < o.x + o.w && o.x < box.x + box.w && box.y < o.y + o.h && o.y < box.y + box.h);
    }

    // Put a label beside its spot, inside the picture (flipped to the other side when there is no
    // room) and clear of the labels already placed.
    function placeLabel(text, spot, u, cls, placed, attrs) {
      const size = 14 * u;
      const gap = 7 * u;
      const node = svg(
        "text",
        Object.assign({ class: "label " + cls, "font-size": size, "stroke-width": 3.5 * u, "dominant-baseline": "central", x: 0, y: 0 }, attrs || {}),
        layers.labels
      );
      if (Array.isArray(text)) {
        // [number, value]: the number as in the table, set apart from the value.
        svg("tspan", { class: "number" }, node).textContent = text[0];
        svg("tspan", { dx: 5 * u }, node).textContent = " " + text[1];
      } else {
        node.textContent = text;
      }
      const w = node.getBBox().width;
      const h = size * 1.25;
      const [ax, ay] = spot.at;
      let [dx, dy] = spot.dir;
      const centre = () => [ax + dx * (gap + w / 2), ay + dy * (gap + h / 2)];
      let [cx, cy] = centre();
      if (cy - h / 2 < 0 || cy + h / 2 > H) {
        dy = -dy;
        [cx, cy] = centre();
      }
      if (cx - w / 2 < 0 || cx + w / 2 > W) {
        dx = -dx;
        [cx, cy] = centre();
      }
      const box = {
        x: clamp(cx - w / 2, 2 * u, Math.max(W - w - 2 * u, 2 * u)),
        y: clamp(cy - h / 2, 2 * u, Math.max(H - h - 2 * u, 2 * u)),
        w,
        h,
      };
      const step = (dy > 0 ? 1 : -1) * (h + 2 * u);
      for (let tries = 0; tries < 16 && overlapsAny(box, placed); tries += 1) {
        const next = box.y + step;
        box.y = next < 0 || next + h > H ? clamp(box.y - step * (tries + 1), 0, H - h) : next;
      }
      node.setAttribute("x", box.x.toFixed(2));
      node.setAttribute("y", (box.y + h / 2).toFixed(2));
      placed.push(box);
      return node;
    }

    function render() {
      const u = unit();
      layers.measurements.replaceChildren();
      layers.marks.replaceChildren();
      layers.masks.replaceChildren();
      layers.labels.replaceChildren();
      const placed = [];
      if (!showMeasurements || showMeasurements.checked) {
        measurements.forEach((m, index) => {
          if (m.frame !== frame || !m.points || !m.points.length) return;
          const g = svg("g", { class: "shape measurement", "data-measurement": m.id }, layers.measurements);
          const deviation = deviationType(m.type);
          drawShape(g, m.tool, m.points, u, { deviation });
          const spot = labelSpot(m.tool, m.points, deviation);
          const label = placeLabel([String(index + 1), m.text], spot, u, "measurement", placed, { "data-measurement": m.id });
          for (const node of [g, label]) {
            node.addEventListener("pointerenter", () => setHot(m.id));
            node.addEventListener("pointerleave", () => setHot(null));
          }
        });
      }
      if (!showMarks || showMarks.checked) {
        for (const a of annotations) {
          if (a.frame !== frame || !a.points || !a.points.length) continue;
          const g = svg("g", { class: "shape mark" }, layers.marks);
          drawShape(g, a.kind, a.points, u);
          if (a.kind === "text" && a.text) {
            const t = svg(
              "text",
              { class: "label mark-text", x: a.points[0][0] + 6 * u, y: a.points[0][1] - 6 * u, "font-size": 15 * u, "stroke-width": 3.5 * u },
              layers.labels
            );
            t.textContent = a.text;
            const box = t.getBBox();
            if (box.x + box.width > W) t.setAttribute("x", String(Math.max(a.points[0][0] - 6 * u - box.width, 0)));
            if (box.y < 0) t.setAttribute("y", String(a.points[0][1] + 18 * u));
          }
        }
      }
      if (tool === "mask" && masks) {
        for (const [x, y, w, h] of masks) svg("rect", { x, y, width: w, height: h, class: "mask-box" }, layers.masks);
      }
      if (tool === "calibrate" && image.calibration && image.calibration.points && !points.length) {
        const g = svg("g", { class: "shape calibration" }, layers.masks);
        drawShape(g, "calibrate", image.calibration.points, u);
        const spot = labelSpot("calibrate", image.calibration.points);
        placeLabel("earlier calibration: " + image.calibration.known_mm + " mm", spot, u, "calibration", placed);
      }
      if (hot !== null) setHot(hot);
      renderDraft();
    }

    function renderDraft() {
      const u = unit();
      layers.draft.replaceChildren();
      if (!tool || !points.length) return;
      const isMark = MARKS.indexOf(tool) !== -1;
      const g = svg("g", { class: "shape draft " + (isMark ? "mark" : tool === "mask" ? "mask" : "measurement") }, layers.draft);
      const complete = points.length >= POINTS[tool] || promptOpen() || busy;
      const type = currentType();
      const deviation = tool === "angle" && !!type && type.angle === "deviation";
      drawShape(g, tool, points, u, { draft: true, deviation, cursor: complete ? null : cursor });
    }

    // ---- start

    function start() {
      fillTypes();
      const gradeSave = byId("vt-grade-save");
      if (gradeSave) gradeSave.addEventListener("click", saveGrade);
      if (tbody) Array.from(tbody.rows).forEach((row) => row.hasAttribute("data-id") && enhanceRow(row));
      if (markList) Array.from(markList.children).forEach(enhanceMark);
      initWindow();
      initFrames();
      showError("");
      setHint(toolHint());
      tools.hidden = false;
      status.hidden = !state.canMeasure; // shown to others only when something goes wrong
      root.classList.add("is-enhanced");
      render();
      if (window.ResizeObserver) new ResizeObserver(() => render()).observe(stage);
      else window.addEventListener("resize", render);
      // Labels are measured with getBBox, which needs the webfont: draw again once it is there.
      if (document.fonts && document.fonts.ready) document.fonts.ready.then(render);
    }

    start();
  }

  function init() {
    const root = document.getElementById("viewer");
    if (!root || root.getAttribute("data-enhanced") === "true") return;
    const source = document.getElementById(root.getAttribute("data-state-id") || "viewer-state");
    if (!source) return;
    let state;
    try {
      state = JSON.parse(source.textContent);
    } catch (error) {
      return; // the page still shows the picture and the table
    }
    root.setAttribute("data-enhanced", "true");
    Viewer(root, state);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
