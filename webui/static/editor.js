// footfall installer mode: zones and counting lines drawn on the floor plan (in metres),
// and camera calibration by clicking point pairs. No inline script: the page's data
// comes from the JSON block #editor-data and the CSRF token from <body hx-headers>.
(function () {
  "use strict";

  var SVG_NS = "http://www.w3.org/2000/svg";
  var ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

  function svgEl(tag, attrs, parent) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function htmlEl(tag, attrs, parent, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function round(v, digits) {
    var f = Math.pow(10, digits);
    return Math.round(v * f) / f;
  }

  function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"];
    } catch (e) {
      return "";
    }
  }

  // POST JSON; resolves to {ok, data} (data.error explains a refusal).
  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(
        function (data) { return { ok: response.ok, data: data }; },
        function () { return { ok: false, data: { error: "the server answered " + response.status } }; }
      );
    }, function () {
      return { ok: false, data: { error: "the box did not answer (network)" } };
    });
  }

  // The SVG user coordinates (metres on the plan, pixels on a camera) of a pointer event.
  function svgPoint(svg, evt) {
    var pt = svg.createSVGPoint();
    pt.x = evt.clientX;
    pt.y = evt.clientY;
    var p = pt.matrixTransform(svg.getScreenCTM().inverse());
    return [p.x, p.y];
  }

  // Screen pixels per SVG unit (for "close to" tests that should not depend on zoom).
  function pixelsPerUnit(svg) { return svg.getScreenCTM().a; }

  function setStatus(text, isError, issues) {
    var status = document.getElementById("editor-status");
    var list = document.getElementById("editor-issues");
    status.textContent = text;
    status.className = "status" + (isError ? " error" : "");
    list.textContent = "";
    (issues || []).forEach(function (i) { htmlEl("li", {}, list, i.path + ": " + i.message); });
  }

  function centroid(points) {
    var x = 0, y = 0;
    points.forEach(function (p) { x += p[0]; y += p[1]; });
    return [x / points.length, y / points.length];
  }

  // The plan's background: the drawing (if any), a 1 m grid (5 m on big plans), the outline.
  function drawPlanBase(svg, plan) {
    var w = plan.width_m, d = plan.depth_m;
    svg.textContent = "";
    if (plan.image_url) {
      svgEl("image", { href: plan.image_url, x: 0, y: 0, width: w, height: d,
                       preserveAspectRatio: "none", "class": "plan-image" }, svg);
    }
    var grid = svgEl("g", { "class": "plan-grid" }, svg);
    var step = Math.max(w, d) > 60 ? 5 : 1;
    for (var x = step; x < w; x += step) { svgEl("line", { x1: x, y1: 0, x2: x, y2: d }, grid); }
    for (var y = step; y < d; y += step) { svgEl("line", { x1: 0, y1: y, x2: w, y2: y }, grid); }
    svgEl("rect", { x: 0, y: 0, width: w, height: d, "class": "plan-outline" }, svg);
    return { unit: Math.max(w, d) / 100, w: w, d: d };
  }

  function drawZone(layer, zone, unit, attrs) {
    var g = svgEl("g", attrs || {}, layer);
    svgEl("polygon", {
      points: zone.polygon.map(function (p) { return p[0] + "," + p[1]; }).join(" "),
      "class": "zone kind-" + zone.kind
    }, g);
    var c = centroid(zone.polygon);
    var label = svgEl("text", { x: c[0], y: c[1], "font-size": unit * 1.8, "class": "zone-label" }, g);
    label.textContent = zone.id;
    return g;
  }

  // A counting line with an arrow towards its inside (left of a→b is cross(b − a, p − a) > 0).
  function drawLine(layer, line, unit, attrs) {
    var g = svgEl("g", attrs || {}, layer);
    var a = line.a, b = line.b;
    svgEl("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], "class": "count-line" }, g);
    var dx = b[0] - a[0], dy = b[1] - a[1], len = Math.hypot(dx, dy) || 1;
    var sign = line.in_side === "left" ? 1 : -1;
    var nx = -dy / len * sign, ny = dx / len * sign;
    var mx = (a[0] + b[0]) / 2, my = (a[1] + b[1]) / 2, s = unit * 4;
    var tip = [mx + nx * s, my + ny * s];
    svgEl("polyline", {
      points: [mx, my, tip[0], tip[1],
               tip[0] - nx * s * 0.35 + ny * s * 0.25, tip[1] - ny * s * 0.35 - nx * s * 0.25,
               tip[0], tip[1],
               tip[0] - nx * s * 0.35 - ny * s * 0.25, tip[1] - ny * s * 0.35 + nx * s * 0.25].join(" "),
      "class": "count-arrow"
    }, g);
    var label = svgEl("text", { x: mx - nx * s * 0.6, y: my - ny * s * 0.6,
                                "font-size": unit * 1.8, "class": "line-label" }, g);
    label.textContent = line.id;
    return g;
  }

  function uniqueId(prefix, items) {
    var taken = {};
    items.forEach(function (i) { taken[i.id] = true; });
    for (var n = 1; ; n += 1) {
      if (!taken[prefix + "-" + n]) { return prefix + "-" + n; }
    }
  }

  // ---------------------------------------------------------------- the layout editor

  function layoutEditor(svg, data) {
    var state = {
      zones: data.zones, lines: data.lines, mode: "select", draft: [],
      selected: null, drag: null, dirty: false
    };
    var base, layers;
    var hint = document.getElementById("editor-hint");
    var finish = document.getElementById("tool-finish");
    var hints = {
      select: "Select a zone or line (on the plan or in the list) to drag its points; double-click a corner to remove it.",
      zone: "Click the zone's corners; click the first corner again (or Finish) to close it.",
      line: "Click the line's two ends.",
      scale: "Click two points whose distance you know."
    };

    function point(evt) {
      var p = svgPoint(svg, evt);
      return [round(clamp(p[0], 0, base.w), 2), round(clamp(p[1], 0, base.d), 2)];
    }

    function setMode(mode) {
      state.mode = mode;
      state.draft = [];
      hint.textContent = hints[mode];
      svg.classList.toggle("drawing", mode !== "select");
      finish.disabled = true;
      renderSvg();
    }

    function changed() {
      state.dirty = true;
      setStatus("Unsaved changes.", false);
    }

    function renderSvg() {
      base = drawPlanBase(svg, data.plan);
      layers = {
        zones: svgEl("g", {}, svg), lines: svgEl("g", {}, svg),
        draft: svgEl("g", { "class": "draft" }, svg), handles: svgEl("g", {}, svg)
      };
      var sel = state.selected;
      state.zones.forEach(function (z, i) {
        var on = sel && sel.type === "zone" && sel.index === i;
        drawZone(layers.zones, z, base.unit, { "data-zone": i, "class": on ? "selected" : "" });
      });
      state.lines.forEach(function (ln, i) {
        var on = sel && sel.type === "line" && sel.index === i;
        drawLine(layers.lines, ln, base.unit, { "data-line": i, "class": on ? "selected" : "" });
      });
      if (state.draft.length) {
        svgEl("polyline", {
          points: state.draft.map(function (p) { return p[0] + "," + p[1]; }).join(" ")
        }, layers.draft);
        state.draft.forEach(function (p, i) {
          svgEl("circle", { cx: p[0], cy: p[1], r: base.unit * (i === 0 ? 1 : 0.6),
                            "class": i === 0 ? "draft-first" : "" }, layers.draft);
        });
      }
      handlePoints().forEach(function (p, k) {
        svgEl("circle", { cx: p[0], cy: p[1], r: base.unit * 0.9, "class": "handle",
                          "data-handle": k }, layers.handles);
      });
    }

    function handlePoints() {
      var sel = state.selected;
      if (!sel) { return []; }
      if (sel.type === "zone") { return state.zones[sel.index].polygon; }
      var ln = state.lines[sel.index];
      return [ln.a, ln.b];
    }

    function setHandle(k, p) {
      var sel = state.selected;
      if (sel.type === "zone") { state.zones[sel.index].polygon[k] = p; }
      else if (k === 0) { state.lines[sel.index].a = p; }
      else { state.lines[sel.index].b = p; }
    }

    function select(type, index) {
      state.selected = index === null ? null : { type: type, index: index };
      renderSvg();
      document.querySelectorAll(".edit-list li").forEach(function (li) {
        li.classList.toggle("selected", !!state.selected && li.dataset.type === type &&
                            Number(li.dataset.index) === index);
      });
    }

    function kindSelect(value, options, cls) {
      var s = htmlEl("select", { "class": cls });
      options.forEach(function (o) {
        var opt = htmlEl("option", { value: o }, s, o);
        if (o === value) { opt.selected = true; }
      });
      return s;
    }

    function listItem(list, type, index, item, extra) {
      var li = htmlEl("li", { "data-type": type, "data-index": index }, list);
      var id = htmlEl("input", { "class": "item-id", value: item.id, "aria-label": type + " id",
                                 autocapitalize: "none", spellcheck: "false" }, li);
      id.addEventListener("input", function () {
        item.id = id.value.trim();
        id.classList.toggle("invalid", !ID_PATTERN.test(item.id));
        changed();
        renderSvg();
      });
      id.addEventListener("focus", function () { select(type, index); });
      li.appendChild(extra);
      var del = htmlEl("button", { type: "button", "class": "secondary item-delete" }, li, "Delete");
      del.addEventListener("click", function () {
        (type === "zone" ? state.zones : state.lines).splice(index, 1);
        state.selected = null;
        changed();
        renderLists();
        renderSvg();
      });
      li.addEventListener("click", function (e) {
        if (e.target === li) { select(type, index); }
      });
      return li;
    }

    function renderLists() {
      var zoneList = document.getElementById("zone-list");
      var lineList = document.getElementById("line-list");
      zoneList.textContent = "";
      lineList.textContent = "";
      state.zones.forEach(function (z, i) {
        var kind = kindSelect(z.kind, data.kinds, "zone-kind");
        kind.addEventListener("change", function () { z.kind = kind.value; changed(); renderSvg(); });
        listItem(zoneList, "zone", i, z, kind);
      });
      state.lines.forEach(function (ln, i) {
        var side = kindSelect(ln.in_side, ["left", "right"], "line-side");
        side.setAttribute("aria-label", "inside is on the");
        side.addEventListener("change", function () { ln.in_side = side.value; changed(); renderSvg(); });
        listItem(lineList, "line", i, ln, side);
      });
      if (!state.zones.length) { htmlEl("li", { "class": "hint" }, zoneList, "No zones yet."); }
      if (!state.lines.length) { htmlEl("li", { "class": "hint" }, lineList, "No lines yet."); }
    }

    function focusNew(type, index) {
      renderLists();
      select(type, index);
      var input = document.querySelector('.edit-list li[data-type="' + type + '"][data-index="' +
                                         index + '"] .item-id');
      if (input) { input.focus(); input.select(); }
    }

    function finishZone() {
      if (state.draft.length < 3) { return; }
      state.zones.push({ id: uniqueId("zone", state.zones), kind: "display", polygon: state.draft });
      setMode("select");
      changed();
      focusNew("zone", state.zones.length - 1);
      setStatus("Zone added: give it an id and a kind, then save.", false);
    }

    function addDraftPoint(p, evt) {
      state.draft.push(p);
      if (state.mode === "line" && state.draft.length === 2) {
        state.lines.push({ id: uniqueId("line", state.lines), a: state.draft[0], b: state.draft[1],
                           in_side: "right" });
        setMode("select");
        changed();
        focusNew("line", state.lines.length - 1);
        return;
      }
      if (state.mode === "scale" && state.draft.length === 2) {
        var names = ["ax", "ay", "bx", "by"], values = state.draft[0].concat(state.draft[1]);
        names.forEach(function (n, i) { document.getElementById("scale-" + n).value = values[i]; });
        document.getElementById("scale-points").textContent =
          "Points (" + state.draft[0].join(", ") + ") and (" + state.draft[1].join(", ") +
          ") m as drawn now; enter their real distance.";
        document.getElementById("scale-apply").disabled = false;
        setMode("select");
        return;
      }
      finish.disabled = !(state.mode === "zone" && state.draft.length >= 3);
      renderSvg();
      if (evt) { evt.preventDefault(); }
    }

    svg.addEventListener("click", function (evt) {
      if (state.drag) { return; }
      if (state.mode === "select") {
        var zoneG = evt.target.closest("[data-zone]");
        var lineG = evt.target.closest("[data-line]");
        if (evt.target.closest("[data-handle]")) { return; }
        if (lineG) { select("line", Number(lineG.dataset.line)); }
        else if (zoneG) { select("zone", Number(zoneG.dataset.zone)); }
        else { select(null, null); }
        return;
      }
      var p = point(evt);
      if (state.mode === "zone" && state.draft.length >= 3) {
        var first = state.draft[0];
        var px = Math.hypot(p[0] - first[0], p[1] - first[1]) * pixelsPerUnit(svg);
        if (px < 12) { finishZone(); return; }
      }
      addDraftPoint(p, evt);
    });

    svg.addEventListener("pointerdown", function (evt) {
      var handle = evt.target.closest("[data-handle]");
      if (!handle || state.mode !== "select") { return; }
      state.drag = { handle: Number(handle.dataset.handle), moved: false };
      svg.setPointerCapture(evt.pointerId);
      evt.preventDefault();
    });
    svg.addEventListener("pointermove", function (evt) {
      if (!state.drag) { return; }
      setHandle(state.drag.handle, point(evt));
      state.drag.moved = true;
      renderSvg();
    });
    function endDrag(evt) {
      if (!state.drag) { return; }
      if (state.drag.moved) { changed(); }
      if (svg.hasPointerCapture(evt.pointerId)) { svg.releasePointerCapture(evt.pointerId); }
      // the click that follows a drag must not change the selection
      setTimeout(function () { state.drag = null; }, 0);
    }
    svg.addEventListener("pointerup", endDrag);
    svg.addEventListener("pointercancel", endDrag);
    svg.addEventListener("dblclick", function (evt) {
      var handle = evt.target.closest("[data-handle]");
      var sel = state.selected;
      if (!handle || !sel || sel.type !== "zone") { return; }
      var polygon = state.zones[sel.index].polygon;
      if (polygon.length <= 3) { setStatus("A zone needs at least three corners.", true); return; }
      polygon.splice(Number(handle.dataset.handle), 1);
      changed();
      renderSvg();
    });

    document.getElementById("tool-zone").addEventListener("click", function () { setMode("zone"); });
    document.getElementById("tool-line").addEventListener("click", function () { setMode("line"); });
    document.getElementById("tool-scale").addEventListener("click", function () { setMode("scale"); });
    document.getElementById("tool-cancel").addEventListener("click", function () { setMode("select"); });
    finish.addEventListener("click", finishZone);
    document.addEventListener("keydown", function (evt) {
      if (evt.target.closest && evt.target.closest("input, select, textarea")) { return; }
      if (evt.key === "Escape") { setMode("select"); }
      if (evt.key === "Enter" && state.mode === "zone") { finishZone(); }
    });

    document.getElementById("layout-save").addEventListener("click", function () {
      var save = document.getElementById("layout-save");
      save.disabled = true;
      setStatus("Saving…", false);
      postJson(data.save_url, { zones: state.zones, lines: state.lines }).then(function (r) {
        save.disabled = false;
        if (!r.ok) {
          setStatus(r.data.error || "Not saved.", true, r.data.issues);
          return;
        }
        state.zones = r.data.zones;
        state.lines = r.data.lines;
        state.selected = null;
        state.dirty = false;
        renderLists();
        renderSvg();
        setStatus("Saved." + (r.data.backup ? " The previous file is kept as " + r.data.backup + "." : ""), false);
      });
    });

    window.addEventListener("beforeunload", function (evt) {
      if (state.dirty) { evt.preventDefault(); evt.returnValue = ""; }
    });

    setMode("select");
    renderLists();
  }

  // ---------------------------------------------------------------- camera calibration

  function calibrationEditor(camSvg, planSvg, data) {
    var state = { pairs: data.pairs, pending: null, errors: null, checked: false };
    var res = data.resolution;
    var frameStamp = Date.now();
    var saveButton = document.getElementById("calibration-save");

    function renderCamera() {
      camSvg.textContent = "";
      if (data.frame_url) {
        svgEl("image", { href: data.frame_url + "?t=" + frameStamp, x: 0, y: 0, width: res[0],
                         height: res[1], preserveAspectRatio: "none" }, camSvg);
      } else {
        svgEl("rect", { x: 0, y: 0, width: res[0], height: res[1], "class": "no-frame" }, camSvg);
      }
      var r = res[0] / 120;
      state.pairs.forEach(function (p, i) { marker(camSvg, p.image, r, i + 1); });
      if (state.pending) { svgEl("circle", { cx: state.pending[0], cy: state.pending[1], r: r, "class": "marker pending" }, camSvg); }
    }

    function renderPlan() {
      var base = drawPlanBase(planSvg, data.plan);
      var g = svgEl("g", { "class": "context" }, planSvg);
      data.zones.forEach(function (z) { drawZone(g, z, base.unit); });
      state.pairs.forEach(function (p, i) { marker(planSvg, p.floor, base.unit * 1.2, i + 1); });
    }

    function marker(svg, p, r, n) {
      svgEl("circle", { cx: p[0], cy: p[1], r: r, "class": "marker" }, svg);
      var t = svgEl("text", { x: p[0] + r * 1.2, y: p[1] - r * 1.2, "font-size": r * 2.4, "class": "marker-label" }, svg);
      t.textContent = String(n);
    }

    function renderPairs() {
      var body = document.getElementById("pair-list");
      body.textContent = "";
      state.pairs.forEach(function (p, i) {
        var tr = htmlEl("tr", {}, body);
        htmlEl("td", {}, tr, String(i + 1));
        htmlEl("td", {}, tr, p.image.join(", "));
        htmlEl("td", {}, tr, p.floor.join(", "));
        htmlEl("td", {}, tr, state.errors ? (state.errors[i] * 100).toFixed(1) + " cm" : "–");
        var td = htmlEl("td", {}, tr);
        var del = htmlEl("button", { type: "button", "class": "secondary" }, td, "Remove");
        del.addEventListener("click", function () {
          state.pairs.splice(i, 1);
          changed();
        });
      });
      saveButton.disabled = !state.checked;
    }

    function changed() {
      state.checked = false;
      state.errors = null;
      setStatus(state.pairs.length + " pairs; check the error before saving.", false);
      render();
    }

    function render() { renderCamera(); renderPlan(); renderPairs(); }

    camSvg.addEventListener("click", function (evt) {
      var p = svgPoint(camSvg, evt);
      state.pending = [round(clamp(p[0], 0, res[0]), 1), round(clamp(p[1], 0, res[1]), 1)];
      setStatus("Now click the same point on the plan.", false);
      renderCamera();
    });
    planSvg.addEventListener("click", function (evt) {
      if (!state.pending) { setStatus("First click the point in the camera image.", true); return; }
      var p = svgPoint(planSvg, evt);
      var floor = [round(clamp(p[0], 0, data.plan.width_m), 2), round(clamp(p[1], 0, data.plan.depth_m), 2)];
      state.pairs.push({ image: state.pending, floor: floor });
      state.pending = null;
      changed();
    });

    function report(r, saved) {
      if (!r.ok) {
        state.checked = false;
        setStatus(r.data.error || "Refused.", true, r.data.issues);
        renderPairs();
        return;
      }
      state.errors = r.data.errors_m;
      state.checked = true;
      var text = "Reprojection error " + (r.data.reprojection_error_m * 100).toFixed(1) +
                 " cm RMS, " + (r.data.max_error_m * 100).toFixed(1) + " cm at the worst point.";
      if (saved) { text = "Saved. " + text + (r.data.backup ? " Previous file: " + r.data.backup + "." : ""); }
      setStatus(text, false);
      renderPairs();
    }

    document.getElementById("calibration-check").addEventListener("click", function () {
      postJson(data.check_url, { pairs: state.pairs }).then(function (r) { report(r, false); });
    });
    saveButton.addEventListener("click", function () {
      saveButton.disabled = true;
      postJson(data.save_url, { pairs: state.pairs }).then(function (r) { report(r, true); });
    });
    var refresh = document.getElementById("frame-refresh");
    if (refresh) {
      refresh.addEventListener("click", function () { frameStamp = Date.now(); renderCamera(); });
    }
    render();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var source = document.getElementById("editor-data");
    if (!source) { return; }
    var data = JSON.parse(source.textContent);
    var camera = document.getElementById("camera-view");
    var plan = document.getElementById("plan-editor");
    if (camera) { calibrationEditor(camera, plan, data); }
    else if (plan) { layoutEditor(plan, data); }
  });
})();
