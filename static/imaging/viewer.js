/* Huizhen image viewer over DICOMweb: WADO-RS metadata and rendered frames.
   Scroll a series, window presets and right-drag windowing, zoom and pan, length in mm. */
(function () {
  "use strict";
  const root = document.getElementById("viewer");
  if (!root) return;
  const base = root.dataset.base;
  const study = root.dataset.study;
  const stage = document.getElementById("stage");
  const frame = document.getElementById("frame");
  const image = document.getElementById("image");
  const overlay = document.getElementById("overlay");
  const slider = document.getElementById("slider");
  const info = document.getElementById("info");
  const status = document.getElementById("status");
  const labels = root.dataset;

  const state = {
    series: null, instances: [], index: 0, window: null, stored: null,
    zoom: 1, panX: 0, panY: 0, measuring: false, points: [], spacing: null, cache: new Map(),
  };

  const value = (ds, tag) => (ds[tag] && ds[tag].Value ? ds[tag].Value : null);
  const first = (ds, tag) => { const v = value(ds, tag); return v ? v[0] : null; };

  function renderedUrl(instance) {
    const uid = first(instance, "00080018");
    let url = `${base}/studies/${study}/series/${state.series}/instances/${uid}/rendered`;
    if (state.window) url += `?window=${state.window[0]},${state.window[1]},linear`;
    return url;
  }

  function fit() {
    const box = stage.getBoundingClientRect();
    const w = image.naturalWidth || 512, h = image.naturalHeight || 512;
    return Math.min(box.width / w, box.height / h) || 1;
  }

  function applyTransform() {
    const scale = fit() * state.zoom;
    const w = image.naturalWidth || 512, h = image.naturalHeight || 512;
    frame.style.transform =
      `translate(${state.panX - (w * scale) / 2}px, ${state.panY - (h * scale) / 2}px) scale(${scale})`;
    overlay.setAttribute("viewBox", `0 0 ${w} ${h}`);
    drawMeasure();
    overlay.style.width = `${w}px`; overlay.style.height = `${h}px`;
    overlay.style.left = "0"; overlay.style.top = "0";
    updateInfo();
  }

  function updateInfo() {
    const n = state.instances.length;
    const win = state.window ? `${state.window[0]}/${state.window[1]}` : "-";
    info.textContent = `${labels.labelImage} ${n ? state.index + 1 : 0}/${n}\n` +
      `${labels.labelWindow} ${win}\n${labels.labelZoom} ${Math.round(state.zoom * 100)}%`;
  }

  function prefetch(i) {
    const instance = state.instances[i];
    if (!instance) return;
    const url = renderedUrl(instance);
    if (!state.cache.has(url)) { const img = new Image(); img.src = url; state.cache.set(url, img); }
  }

  function show(i) {
    if (!state.instances.length) return;
    state.index = Math.max(0, Math.min(state.instances.length - 1, i));
    slider.value = String(state.index + 1);
    const instance = state.instances[state.index];
    const spacing = value(instance, "00280030") || value(instance, "00181164");
    state.spacing = spacing ? spacing.map(Number) : null;
    image.src = renderedUrl(instance);
    prefetch(state.index + 1); prefetch(state.index - 1);
    drawMeasure();
    updateInfo();
  }

  async function loadSeries(seriesUid, button) {
    document.querySelectorAll("button.series").forEach((b) => b.classList.toggle("active", b === button));
    state.series = seriesUid; state.points = []; state.cache.clear(); status.textContent = "";
    const response = await fetch(`${base}/studies/${study}/series/${seriesUid}/metadata`, {
      headers: { Accept: "application/dicom+json" }, credentials: "same-origin",
    });
    if (!response.ok) { status.textContent = labels.labelLoadError; return; }
    const datasets = await response.json();
    datasets.sort((a, b) => (first(a, "00200013") || 0) - (first(b, "00200013") || 0));
    state.instances = datasets;
    const c = first(datasets[0] || {}, "00281050"), w = first(datasets[0] || {}, "00281051");
    state.stored = c !== null && w !== null ? [Number(c), Number(w)] : null;
    state.window = state.stored;
    slider.max = String(Math.max(1, datasets.length));
    show(Math.floor(datasets.length / 2));
  }

  image.addEventListener("load", applyTransform);
  image.addEventListener("error", () => { status.textContent = labels.labelLoadError; });
  window.addEventListener("resize", applyTransform);
  slider.addEventListener("input", () => show(Number(slider.value) - 1));

  stage.addEventListener("wheel", (event) => {
    event.preventDefault();
    if (event.ctrlKey) { zoomBy(event.deltaY < 0 ? 1.1 : 0.9); return; }
    show(state.index + (event.deltaY > 0 ? 1 : -1));
  }, { passive: false });

  stage.addEventListener("keydown", (event) => {
    const moves = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 };
    if (event.key in moves) { event.preventDefault(); show(state.index + moves[event.key]); }
  });

  function zoomBy(factor) { state.zoom = Math.max(0.1, Math.min(20, state.zoom * factor)); applyTransform(); }

  function toImage(event) {
    const rect = image.getBoundingClientRect();
    return [
      ((event.clientX - rect.left) / rect.width) * image.naturalWidth,
      ((event.clientY - rect.top) / rect.height) * image.naturalHeight,
    ];
  }

  let drag = null;
  stage.addEventListener("contextmenu", (event) => event.preventDefault());
  stage.addEventListener("pointerdown", (event) => {
    stage.focus();
    if (state.measuring && event.button === 0) {
      const point = toImage(event);
      state.points = state.points.length === 1 ? [state.points[0], point] : [point];
      drawMeasure();
      return;
    }
    drag = { x: event.clientX, y: event.clientY, button: event.button,
             panX: state.panX, panY: state.panY, window: state.window ? [...state.window] : [40, 400] };
    stage.setPointerCapture(event.pointerId);
  });
  stage.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
    if (drag.button === 2 || event.shiftKey) {
      state.window = [Math.round(drag.window[0] + dy * 2), Math.max(1, Math.round(drag.window[1] + dx * 4))];
      updateInfo();
    } else {
      state.panX = drag.panX + dx; state.panY = drag.panY + dy; applyTransform();
    }
  });
  stage.addEventListener("pointerup", () => {
    if (drag && (drag.button === 2 || drag.shiftKey)) show(state.index);
    drag = null;
  });

  function drawMeasure() {
    overlay.innerHTML = "";
    const ns = "http://www.w3.org/2000/svg";
    if (state.points.length !== 2) return;
    const [[x1, y1], [x2, y2]] = state.points;
    const line = document.createElementNS(ns, "line");
    line.setAttribute("x1", x1); line.setAttribute("y1", y1);
    line.setAttribute("x2", x2); line.setAttribute("y2", y2);
    overlay.appendChild(line);
    const text = document.createElementNS(ns, "text");
    const scale = fit() * state.zoom;  // keep the label 14 screen pixels high at any zoom
    text.setAttribute("font-size", String(14 / scale));
    text.setAttribute("stroke-width", String(3 / scale));
    text.setAttribute("x", x2 + 4 / scale); text.setAttribute("y", y2 - 4 / scale);
    if (state.spacing) {
      const mm = Math.hypot((x2 - x1) * state.spacing[1], (y2 - y1) * state.spacing[0]);
      text.textContent = `${mm.toFixed(1)} mm`;
    } else {
      text.textContent = `${Math.hypot(x2 - x1, y2 - y1).toFixed(0)} px`;
    }
    overlay.appendChild(text);
  }

  document.querySelectorAll("[data-preset]").forEach((button) => button.addEventListener("click", () => {
    const preset = button.dataset.preset;
    state.window = preset === "default" ? state.stored : preset.split(",").map(Number);
    show(state.index);
  }));
  document.querySelectorAll("[data-zoom]").forEach((button) =>
    button.addEventListener("click", () => zoomBy(Number(button.dataset.zoom))));
  document.querySelector('[data-action="reset"]').addEventListener("click", () => {
    state.zoom = 1; state.panX = 0; state.panY = 0; state.window = state.stored; state.points = [];
    show(state.index);
  });
  const measure = document.querySelector('[data-action="measure"]');
  measure.addEventListener("click", () => {
    state.measuring = !state.measuring; state.points = [];
    measure.setAttribute("aria-pressed", String(state.measuring));
    stage.classList.toggle("measuring", state.measuring);
    drawMeasure();
  });

  const buttons = document.querySelectorAll("button.series");
  buttons.forEach((button) => button.addEventListener("click", () => loadSeries(button.dataset.series, button)));
  if (buttons.length) loadSeries(buttons[0].dataset.series, buttons[0]);
})();
