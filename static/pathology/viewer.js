/* Huizhen slide viewer: OpenSeadragon over the pathology tile API (one OpenSeadragon level per
   stored DICOM pyramid level), magnification display, and point / rectangle / polygon
   annotations with text saved through the API. window.huizhenSlide reports the state. */
(function () {
  "use strict";
  const root = document.getElementById("slide-viewer");
  if (!root || !window.OpenSeadragon) return;
  const OSD = window.OpenSeadragon;
  const labels = root.dataset;
  const status = document.getElementById("slide-status");
  const info = document.getElementById("slide-info");
  const list = document.getElementById("annotation-list");
  const textInput = document.getElementById("annotation-text");
  const finishButton = root.querySelector("[data-action='finish']");
  const state = window.huizhenSlide = {
    opened: false, tilesLoaded: 0, tileErrors: 0, annotations: [], tool: "pan", slide: null,
  };
  let viewer = null;
  let draft = null; // {shape, points: [[x, y], ...], element}
  const overlays = new Map();

  if (!root.dataset.series) return;
  const api = `/api/v1/pathology/slides/${root.dataset.study}/${root.dataset.series}/`;

  function headers(json) {
    const h = { "X-CSRFToken": root.dataset.csrf, Accept: "application/json" };
    if (json) h["Content-Type"] = "application/json";
    return h;
  }

  function tileSource(slide) {
    const levels = slide.levels.slice().reverse(); // OpenSeadragon counts from the smallest
    const top = levels.length - 1;
    return {
      width: slide.width, height: slide.height, tileSize: levels[top].tile_width, tileOverlap: 0,
      minLevel: 0, maxLevel: top,
      getLevelScale(level) { return levels[level] ? levels[level].width / slide.width : 0; },
      getTileWidth(level) { return (levels[level] || levels[top]).tile_width; },
      getTileHeight(level) { return (levels[level] || levels[top]).tile_height; },
      getNumTiles(level) {
        const l = levels[level];
        return l ? new OSD.Point(l.tiles_across, l.tiles_down) : new OSD.Point(0, 0);
      },
      getTileUrl(level, x, y) {
        return slide.tile_url.replace("{level}", String(top - level))
          .replace("{col}", String(x)).replace("{row}", String(y));
      },
    };
  }

  function magnification() {
    if (!viewer || !state.slide) return;
    const slide = state.slide;
    const zoom = viewer.viewport.viewportToImageZoom(viewer.viewport.getZoom(true));
    const parts = [];
    if (slide.objective_power) {
      parts.push(`${labels.labelMagnification} ${(slide.objective_power * zoom).toFixed(1)}×`);
      parts.push(`(${labels.labelScan} ${slide.objective_power}×)`);
    }
    if (slide.mpp) parts.push(`${(slide.mpp / zoom).toPrecision(3)} ${labels.labelPixel}`);
    info.textContent = parts.join(" · ");
  }

  function goToMagnification(power) {
    const slide = state.slide;
    if (!slide || !slide.objective_power) return;
    const imageZoom = power / slide.objective_power;
    viewer.viewport.zoomTo(viewer.viewport.imageToViewportZoom(imageZoom));
  }

  // --- annotations ---------------------------------------------------------------------------

  function svgShape(shape, points, cls) {
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const minX = Math.min(...xs), minY = Math.min(...ys);
    const w = Math.max(1, Math.max(...xs) - minX), h = Math.max(1, Math.max(...ys) - minY);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", `ann-shape ${cls || ""}`);
    svg.setAttribute("viewBox", `${minX} ${minY} ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    let el;
    if (shape === "rectangle") {
      el = document.createElementNS(ns, "rect");
      el.setAttribute("x", minX); el.setAttribute("y", minY);
      el.setAttribute("width", w); el.setAttribute("height", h);
    } else {
      el = document.createElementNS(ns, "polygon");
      el.setAttribute("points", points.map((p) => p.join(",")).join(" "));
    }
    svg.appendChild(el);
    return { element: svg, rect: new OSD.Rect(minX, minY, w, h) };
  }

  function addOverlay(annotation) {
    const vp = viewer.viewport;
    const made = [];
    const pts = annotation.points;
    if (annotation.shape === "point") {
      const dot = document.createElement("div");
      dot.className = "ann-point";
      viewer.addOverlay({ element: dot, location: vp.imageToViewportCoordinates(pts[0][0], pts[0][1]),
        placement: OSD.Placement.CENTER, checkResize: false });
      made.push(dot);
    } else {
      const { element, rect } = svgShape(annotation.shape, pts);
      viewer.addOverlay({ element, location: vp.imageToViewportRectangle(rect) });
      made.push(element);
    }
    if (annotation.text) {
      const label = document.createElement("div");
      label.className = "ann-label";
      label.textContent = annotation.text;
      viewer.addOverlay({ element: label, location: vp.imageToViewportCoordinates(pts[0][0], pts[0][1]),
        placement: OSD.Placement.BOTTOM_LEFT, checkResize: false });
      made.push(label);
    }
    overlays.set(annotation.id, made);
  }

  function removeOverlay(id) {
    (overlays.get(id) || []).forEach((el) => viewer.removeOverlay(el));
    overlays.delete(id);
  }

  function renderList() {
    list.replaceChildren();
    state.annotations.forEach((a) => {
      const li = document.createElement("li");
      li.dataset.id = a.id;
      const link = document.createElement("a");
      link.href = "#";
      link.textContent = `${a.shape}: ${a.text || labels.labelNoText}`;
      link.addEventListener("click", (e) => {
        e.preventDefault();
        const p = a.points[0];
        viewer.viewport.panTo(viewer.viewport.imageToViewportCoordinates(p[0], p[1]));
      });
      li.appendChild(link);
      if (a.mine) {
        const del = document.createElement("button");
        del.type = "button"; del.textContent = labels.labelDelete;
        del.addEventListener("click", () => deleteAnnotation(a.id));
        li.appendChild(del);
      }
      list.appendChild(li);
    });
  }

  async function loadAnnotations() {
    const query = root.dataset.consult ? `?consult=${root.dataset.consult}` : "";
    const response = await fetch(`${api}annotations/${query}`, { headers: headers(false), credentials: "same-origin" });
    if (!response.ok) return;
    state.annotations = await response.json();
    state.annotations.forEach(addOverlay);
    renderList();
  }

  async function saveAnnotation(shape, points) {
    const body = { shape, points: points.map((p) => [Math.round(p[0]), Math.round(p[1])]), text: textInput.value };
    if (root.dataset.consult) body.consult = root.dataset.consult;
    const response = await fetch(`${api}annotations/`, {
      method: "POST", headers: headers(true), credentials: "same-origin", body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      status.textContent = `${labels.labelSaveError} ${data.detail || response.status}`;
      return;
    }
    status.textContent = "";
    textInput.value = "";
    state.annotations.push(data);
    addOverlay(data);
    renderList();
  }

  async function deleteAnnotation(id) {
    const response = await fetch(`/api/v1/pathology/annotations/${id}/`, {
      method: "DELETE", headers: headers(false), credentials: "same-origin",
    });
    if (response.ok || response.status === 404) {
      removeOverlay(id);
      state.annotations = state.annotations.filter((a) => a.id !== id);
      renderList();
    }
  }

  // --- drawing -------------------------------------------------------------------------------

  function clampedImagePoint(position) {
    const p = viewer.viewport.viewerElementToImageCoordinates(position);
    const slide = state.slide;
    return [Math.min(slide.width, Math.max(0, p.x)), Math.min(slide.height, Math.max(0, p.y))];
  }

  function showDraft() {
    if (draft.element) viewer.removeOverlay(draft.element);
    draft.element = null;
    if (draft.points.length < 2) return;
    const { element, rect } = svgShape(draft.shape, draft.points, "draft");
    draft.element = element;
    viewer.addOverlay({ element, location: viewer.viewport.imageToViewportRectangle(rect) });
  }

  function endDraft(save) {
    if (!draft) return;
    const { shape, points } = draft;
    if (draft.element) viewer.removeOverlay(draft.element);
    draft = null;
    finishButton.hidden = true;
    if (save) saveAnnotation(shape, points);
  }

  function setTool(tool) {
    endDraft(false);
    state.tool = tool;
    root.querySelectorAll("[data-tool]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.tool === tool)));
    document.getElementById("osd").classList.toggle("drawing", tool !== "pan");
    status.textContent = tool === "polygon" ? labels.labelPolygonHint : "";
  }

  function wireDrawing() {
    viewer.addHandler("canvas-click", (e) => {
      if (state.tool === "pan" || !e.quick) return;
      e.preventDefaultAction = true;
      const p = clampedImagePoint(e.position);
      if (state.tool === "point") saveAnnotation("point", [p]);
      else if (state.tool === "polygon") {
        if (!draft) { draft = { shape: "polygon", points: [] }; finishButton.hidden = false; }
        draft.points.push(p);
        showDraft();
      }
    });
    viewer.addHandler("canvas-double-click", (e) => {
      if (state.tool !== "pan") e.preventDefaultAction = true;
      if (state.tool === "polygon" && draft && draft.points.length >= 3) endDraft(true);
    });
    viewer.addHandler("canvas-press", (e) => {
      if (state.tool !== "rectangle") return;
      draft = { shape: "rectangle", points: [clampedImagePoint(e.position)] };
    });
    viewer.addHandler("canvas-drag", (e) => {
      if (state.tool === "pan") return;
      e.preventDefaultAction = true;
      if (state.tool === "rectangle" && draft) {
        draft.points[1] = clampedImagePoint(e.position);
        showDraft();
      }
    });
    viewer.addHandler("canvas-release", () => {
      if (state.tool === "rectangle" && draft) endDraft(draft.points.length === 2);
    });
  }

  // --- start ---------------------------------------------------------------------------------

  root.querySelectorAll("[data-tool]").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  finishButton.addEventListener("click", () => { if (draft && draft.points.length >= 3) endDraft(true); });
  root.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => {
    viewer.viewport.zoomBy(Number(b.dataset.zoom)); viewer.viewport.applyConstraints();
  }));
  root.querySelectorAll("[data-magnification]").forEach((b) => b.addEventListener("click", () => goToMagnification(Number(b.dataset.magnification))));
  root.querySelector("[data-action='home']").addEventListener("click", () => viewer.viewport.goHome());
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") endDraft(false);
    if (e.key === "Enter" && draft && draft.shape === "polygon" && draft.points.length >= 3) endDraft(true);
  });

  fetch(api, { headers: headers(false), credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
    .then((slide) => {
      state.slide = slide;
      viewer = OSD({
        id: "osd", prefixUrl: root.dataset.prefix, tileSources: tileSource(slide),
        showNavigator: true, navigatorPosition: "BOTTOM_RIGHT", showRotationControl: false,
        maxZoomPixelRatio: 2, visibilityRatio: 0.5, crossOriginPolicy: false,
        gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: false },
      });
      state.viewer = viewer;
      viewer.addHandler("open", () => { state.opened = true; magnification(); loadAnnotations(); });
      viewer.addHandler("open-failed", () => { status.textContent = labels.labelLoadError; });
      viewer.addHandler("tile-loaded", () => { state.tilesLoaded += 1; });
      viewer.addHandler("tile-load-failed", () => { state.tileErrors += 1; });
      viewer.addHandler("zoom", magnification);
      viewer.addHandler("animation", magnification);
      wireDrawing();
    })
    .catch(() => { status.textContent = labels.labelLoadError; });
})();
