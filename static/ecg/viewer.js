/* Huizhen 12-lead ECG viewer: the waveform drawn on a millimetre grid in SVG (1 user unit =
   1 mm), layouts 3x4 + rhythm / 6x2 / 12x1, 25/50 mm/s, 5/10/20 mm/mV, zoom, time and
   amplitude calipers, and the confirm-or-correct form of the measurements. */
(function () {
  "use strict";
  const root = document.getElementById("ecg");
  if (!root) return;
  const labels = root.dataset;
  const svg = document.getElementById("paper");
  const wrap = document.getElementById("paper-wrap");
  const readout = document.getElementById("readout");
  const status = document.getElementById("status");
  const NS = "http://www.w3.org/2000/svg";
  const MARGIN = 5, CAL = 10;
  const GRIDS = {
    "3x4": [[["I", "aVR", "V1", "V4"], ["II", "aVL", "V2", "V5"], ["III", "aVF", "V3", "V6"]], 2.5, 4.0],
    "6x2": [[["I", "V1"], ["II", "V2"], ["III", "V3"], ["aVR", "V4"], ["aVL", "V5"], ["aVF", "V6"]], 5.0, 3.0],
    "12x1": [["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"].map((n) => [n]), null, 2.2],
  };
  const state = { data: null, layout: "3x4", speed: 25, gain: 10, zoom: 1.6, caliper: null, points: [], rows: [] };

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function median(values) {
    const s = Array.from(values).sort((a, b) => a - b);
    return s.length ? s[Math.floor(s.length / 2)] : 0;
  }

  function draw() {
    const d = state.data;
    if (!d) return;
    const fs = d.sample_rate;
    const total = d.leads[Object.keys(d.leads)[0]].length / fs;
    const [rows, secondsDefault, rowUnits] = GRIDS[state.layout];
    const seconds = Math.min(secondsDefault || total, total / rows[0].length);
    const rowH = rowUnits * state.gain;
    const strip = state.layout === "3x4" && d.leads.II;
    const nRows = rows.length + (strip ? 1 : 0);
    const colW = seconds * state.speed;
    let width = 2 * MARGIN + CAL + colW * rows[0].length;
    if (strip) width = Math.max(width, 2 * MARGIN + CAL + total * state.speed);
    width = Math.ceil(width / 5) * 5;
    const height = Math.ceil((2 * MARGIN + rowH * nRows) / 5) * 5;
    svg.innerHTML = "";
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", `${width * state.zoom * 3.78}`);
    svg.setAttribute("height", `${height * state.zoom * 3.78}`);
    svg.dataset.widthMm = width;
    const defs = el("defs", {}, svg);
    const minor = el("pattern", { id: "minor", width: 1, height: 1, patternUnits: "userSpaceOnUse" }, defs);
    el("path", { d: "M1 0V1H0", fill: "none", stroke: "#f6c6c6", "stroke-width": 0.05 }, minor);
    const major = el("pattern", { id: "major", width: 5, height: 5, patternUnits: "userSpaceOnUse" }, defs);
    el("path", { d: "M5 0V5H0", fill: "none", stroke: "#e58f8f", "stroke-width": 0.12 }, major);
    el("rect", { width, height, fill: "#fff" }, svg);
    el("rect", { width, height, fill: "url(#minor)" }, svg);
    el("rect", { width, height, fill: "url(#major)" }, svg);
    const ink = el("g", { fill: "none", stroke: "#000", "stroke-width": 0.25, "stroke-linejoin": "round" }, svg);
    const text = el("g", { "font-family": "sans-serif", "font-size": 3 }, svg);
    const n = Math.round(seconds * fs);
    state.rows = [];
    const place = (lead, start, count, x0, y0) => {
      const values = d.leads[lead];
      if (!values) return;
      const base = median(values.filter((_, i) => i % 10 === 0));
      const parts = [];
      for (let i = 0; i < count && start + i < values.length; i++) {
        const x = x0 + (i / fs) * state.speed;
        const y = y0 - ((values[start + i] - base) / 1000) * state.gain;
        parts.push(`${x.toFixed(2)} ${y.toFixed(2)}`);
      }
      el("path", { class: "trace", "data-lead": lead, d: "M" + parts.join(" L") }, ink);
      const t = el("text", { x: x0 + 1, y: y0 - state.gain * 1.1 }, text);
      t.textContent = lead;
    };
    const cal = (y0) => {
      const h = state.gain, w = 0.2 * state.speed, x = MARGIN;
      el("polyline", { points: `${x},${y0} ${x + 1},${y0} ${x + 1},${y0 - h} ${x + 1 + w},${y0 - h} ${x + 1 + w},${y0} ${x + 9},${y0}` }, ink);
    };
    rows.forEach((row, r) => {
      const y0 = MARGIN + rowH * (r + 0.6);
      cal(y0);
      row.forEach((lead, c) => place(lead, c * n, n, MARGIN + CAL + c * colW, y0));
    });
    if (strip) {
      const y0 = MARGIN + rowH * (rows.length + 0.6);
      cal(y0);
      place("II", 0, d.leads.II.length, MARGIN + CAL, y0);
    }
    const foot = el("text", { x: MARGIN, y: height - 1.5 }, text);
    foot.textContent = `${state.speed} mm/s  ${state.gain} mm/mV`;
    state.overlay = el("g", { class: "calipers" }, svg);
    drawCalipers();
    const q = `?layout=${state.layout}&speed=${state.speed}&gain=${state.gain}`;
    document.getElementById("png-link").href = `${labels.api}render.png${q}`;
    document.getElementById("svg-link").href = `${labels.api}render.svg${q}`;
  }

  function toMm(event) {
    const pt = svg.createSVGPoint();
    pt.x = event.clientX; pt.y = event.clientY;
    const p = pt.matrixTransform(svg.getScreenCTM().inverse());
    return { x: p.x, y: p.y };
  }

  function drawCalipers() {
    if (!state.overlay) return;
    state.overlay.innerHTML = "";
    const box = svg.viewBox.baseVal;
    for (const p of state.points) {
      if (state.caliper === "time") {
        el("line", { class: "caliper", x1: p.x, x2: p.x, y1: 0, y2: box.height }, state.overlay);
      } else {
        el("line", { class: "caliper", x1: 0, x2: box.width, y1: p.y, y2: p.y }, state.overlay);
      }
    }
    if (state.points.length === 2) {
      const [a, b] = state.points;
      let label;
      if (state.caliper === "time") {
        const ms = (Math.abs(b.x - a.x) / state.speed) * 1000;
        label = `${labels.labelInterval} ${ms.toFixed(0)} ms · ${labels.labelRate} ${(60000 / ms).toFixed(0)}/min`;
      } else {
        label = `${labels.labelAmplitude} ${(Math.abs(b.y - a.y) / state.gain).toFixed(2)} mV`;
      }
      readout.textContent = label;
      const t = el("text", { class: "caliper-label", x: Math.min(a.x, b.x) + 1, y: Math.min(a.y, b.y) - 1 }, state.overlay);
      t.textContent = label;
    } else {
      readout.textContent = "";
    }
  }

  svg.addEventListener("click", (event) => {
    if (!state.caliper) return;
    if (state.points.length === 2) state.points = [];
    state.points.push(toMm(event));
    drawCalipers();
  });

  document.querySelectorAll("[data-caliper]").forEach((button) => {
    button.addEventListener("click", () => {
      const mode = button.dataset.caliper;
      state.caliper = state.caliper === mode ? null : mode;
      state.points = [];
      document.querySelectorAll("[data-caliper]").forEach((b) =>
        b.setAttribute("aria-pressed", String(b.dataset.caliper === state.caliper)));
      drawCalipers();
    });
  });
  document.querySelector("[data-action=clear]").addEventListener("click", () => { state.points = []; drawCalipers(); });
  document.querySelectorAll("[data-zoom]").forEach((button) => {
    button.addEventListener("click", () => {
      state.zoom = Math.max(0.5, Math.min(8, state.zoom * Number(button.dataset.zoom)));
      draw();
    });
  });
  for (const id of ["layout", "speed", "gain"]) {
    document.getElementById(id).addEventListener("change", (event) => {
      state[id] = id === "layout" ? event.target.value : Number(event.target.value);
      state.points = [];
      draw();
    });
  }

  const form = document.getElementById("confirm-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = {};
    form.querySelectorAll("input[type=number]").forEach((input) => {
      values[input.name] = input.value === "" ? null : Number(input.value);
    });
    const flags = Array.from(form.querySelectorAll("input[name=flag]:checked")).map((i) => i.value);
    const note = form.querySelector("textarea[name=note]").value;
    const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
    const response = await fetch(`${labels.api}confirm/`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ values, flags, note }),
      credentials: "same-origin",
    });
    if (response.ok) {
      status.textContent = labels.labelSaved;
    } else {
      const body = await response.json().catch(() => ({}));
      status.textContent = labels.labelSaveError + (body.detail || response.status);
    }
  });

  fetch(`${labels.api}waveform/`, { credentials: "same-origin" })
    .then((r) => { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
    .then((data) => { state.data = data; draw(); root.dataset.ready = "1"; })
    .catch(() => { status.textContent = labels.labelLoadError; });
})();
