// vitrestore studio: plain JavaScript, no build step, nothing fetched from elsewhere.
"use strict";
const $ = (id) => document.getElementById(id);
const photo = $("photo"), mask = $("mask"), layer = $("layer"), stage = $("stage");
const state = {
  image: null,        // the current image {id, name, width, height, ...}
  before: null,       // the image before the last run (hold-to-compare)
  history: [],        // undo entries: {kind: "stroke", op} or {kind: "image", from, to}
  redo: [],
  ops: [],            // mask operations on the current image (replayed on undo)
  tool: "brush",
  zoom: 1, x: 0, y: 0,
  job: null,
  frame: 0,           // a clip's frame shown (the slider): the one drawn, previewed and compared
  token: sessionStorage.getItem("vitrestore-token") || "",
};

function message(text, ok) {
  $("message").textContent = text || "";
  $("message").className = ok ? "ok" : "";
}

async function api(path, options = {}) {
  options.headers = Object.assign({}, options.headers || {}, state.token ? {"X-Vitrestore-Token": state.token} : {});
  const res = await fetch(path, options);
  if (res.status === 401) {
    const t = prompt("This studio needs its token (from --token-file, $VITRESTORE_STUDIO_TOKEN or --token):");
    if (t) { state.token = t; sessionStorage.setItem("vitrestore-token", t); return api(path, options); }
  }
  if (!res.ok) {
    let text = res.status + " " + res.statusText;
    try { text = (await res.json()).error || text; } catch (e) { /* not JSON */ }
    throw new Error(text);
  }
  return res;
}

// --- view: zoom and pan -------------------------------------------------------------------
function applyView() {
  layer.style.transform = `translate(${state.x}px, ${state.y}px) scale(${state.zoom})`;
  layer.style.setProperty("--zoom", state.zoom);  // the crop marker's outline stays 2 screen pixels wide
}
function fit() {
  if (!state.image) return;
  const r = stage.getBoundingClientRect();
  state.zoom = Math.min(r.width / state.image.width, r.height / state.image.height, 8) * 0.96;
  state.x = (r.width - state.image.width * state.zoom) / 2;
  state.y = (r.height - state.image.height * state.zoom) / 2;
  applyView();
}
function zoomAt(factor, cx, cy) {
  const z = Math.min(32, Math.max(0.02, state.zoom * factor));
  state.x = cx - (cx - state.x) * z / state.zoom;
  state.y = cy - (cy - state.y) * z / state.zoom;
  state.zoom = z;
  applyView();
}
stage.addEventListener("wheel", (e) => {
  e.preventDefault();
  const r = stage.getBoundingClientRect();
  zoomAt(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
}, {passive: false});
$("fit").onclick = fit;
$("one").onclick = () => { const r = stage.getBoundingClientRect(); zoomAt(1 / state.zoom, r.width / 2, r.height / 2); };

// --- images -----------------------------------------------------------------------------
// an image's picture as the page shows it: its preview, or a clip's frame (GET .../frames/<n>)
function picture(image) {
  return image.clip ? image.clip.frame + Math.min(state.frame, image.clip.frames - 1) : image.preview;
}
async function show(image) {
  const res = await api(picture(image));
  const bitmap = await createImageBitmap(await res.blob());
  const sizeChanged = !state.image || state.image.width !== image.width || state.image.height !== image.height;
  photo.width = mask.width = image.width;
  photo.height = mask.height = image.height;
  photo.getContext("2d").drawImage(bitmap, 0, 0);
  state.image = image;
  hidePreview();  // it showed the image before
  if (sizeChanged) preview.point = null;
  state.ops = [];
  redrawMask();
  document.body.dataset.image = image.id;
  document.body.dataset.state = "ready";
  showClip(image, res);
  $("run").disabled = false;
  const link = $("download");
  link.hidden = false;
  link.textContent = "Download " + image.name;
  if (sizeChanged) fit();
}

async function upload(file) {
  await optionsBuilt;  // an image is "ready" only with its task's controls there
  message("uploading " + (file.name || "image") + " …", true);
  try {
    const res = await api("/api/images", {method: "POST", body: file,
      headers: {"X-Filename": encodeURIComponent(file.name || "pasted.png"), "Content-Type": "application/octet-stream"}});
    const image = await res.json();
    state.history = []; state.redo = []; state.before = null; state.frame = 0;
    $("compare").disabled = true;
    await show(image);
    message(image.clip ? `${image.name}: ${image.width}x${image.height}, ${clipFacts(image.clip)}`
      : `${image.name}: ${image.width}x${image.height}, ${image.channels} channel(s), ${image.bits}-bit`, true);
    if (paintDraft($("task").value)) draft();  // a task that drafts its mask: drafted for the new photo
  } catch (e) { message(e.message); }
}

// --- clips: the frame slider; the frame shown is the one previewed, drafted and compared ----------
function clipFacts(clip) {
  const kept = clip.streams.length ? `${clip.streams.join(", ")} kept` : "no sound";
  return `${clip.frames} frames at ${clip.rate} fps (${clip.duration.toFixed(2)} s), ${kept}`;
}
function showClip(image, res) {  // the slider for a clip (`res`: its frame's answer), none for an image
  document.body.toggleAttribute("data-clip", Boolean(image.clip));
  const adapt = $("adapt");  // adapting fine-tunes on one photo: a clip runs with the model as it is
  if (image.clip) adapt.checked = false;
  adapt.disabled = Boolean(image.clip);
  adapt.onchange();
  if (!image.clip) return;
  const slider = $("frame");
  slider.max = image.clip.frames - 1;
  slider.value = Math.min(state.frame, image.clip.frames - 1);
  frameShown(Number(slider.value), res);
}
function frameShown(n, res) {
  const t = Number(res.headers.get("X-Frame-Time") || 0);
  $("frame-value").textContent = `${n + 1} / ${state.image.clip.frames} · ${t.toFixed(2)} s`;
  document.body.dataset.frame = n;
}
let frameAsked = 0;  // the latest frame asked for: an older answer is dropped
async function showFrame() {
  const image = state.image, asked = ++frameAsked;
  if (!image || !image.clip) return;
  state.frame = Number($("frame").value);
  try {
    const res = await api(picture(peeking && state.before ? state.before : image));
    const bitmap = await createImageBitmap(await res.blob());
    if (asked !== frameAsked || state.image !== image) return;  // another frame or image meanwhile
    photo.getContext("2d").drawImage(bitmap, 0, 0, photo.width, photo.height);
    frameShown(state.frame, res);
  } catch (e) { message(e.message); return; }
  if (preview.wanted) schedulePreview(0);  // the preview is of the frame shown
}
$("frame").oninput = showFrame;
document.addEventListener("keydown", (e) => {  // , and . step a clip's frames
  if (e.target.tagName === "INPUT" || !state.image || !state.image.clip || ![",", "."].includes(e.key)) return;
  $("frame").value = Number($("frame").value) + (e.key === "." ? 1 : -1);
  showFrame();
});

$("file").onchange = (e) => { if (e.target.files[0]) upload(e.target.files[0]); e.target.value = ""; };
stage.addEventListener("dragover", (e) => { e.preventDefault(); stage.classList.add("dragging"); });
stage.addEventListener("dragleave", () => stage.classList.remove("dragging"));
stage.addEventListener("drop", (e) => {
  e.preventDefault(); stage.classList.remove("dragging");
  if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
});
document.addEventListener("paste", (e) => {
  const item = [...(e.clipboardData || {}).items || []].find((i) => i.type.startsWith("image/"));
  if (item) upload(item.getAsFile());
});

$("download").onclick = async (e) => {
  e.preventDefault();
  if (!state.image) return;
  try {
    const blob = await (await api(state.image.file)).blob();
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = state.image.name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (err) { message(err.message); }
};

// --- the mask: strokes and rectangles, replayed from a list (cheap undo on any image size) -----
function drawOp(ctx, op) {
  ctx.globalCompositeOperation = op.tool === "eraser" ? "destination-out" : "source-over";
  if (op.tool === "draft") { ctx.drawImage(op.canvas, 0, 0); return; }  // a model's mask (POST /api/draft)
  ctx.fillStyle = ctx.strokeStyle = "rgb(255, 40, 90)";
  if (op.tool === "rect") {
    const [a, b] = op.points;
    ctx.fillRect(Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(b[0] - a[0]), Math.abs(b[1] - a[1]));
    return;
  }
  ctx.lineWidth = op.size; ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  op.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  if (op.points.length === 1) ctx.lineTo(op.points[0][0] + 0.01, op.points[0][1]);
  ctx.stroke();
}
function redrawMask(extra) {
  const ctx = mask.getContext("2d");
  ctx.clearRect(0, 0, mask.width, mask.height);
  state.ops.concat(extra ? [extra] : []).forEach((op) => drawOp(ctx, op));
}
function imagePoint(e) {
  const r = photo.getBoundingClientRect();  // the mask's place too (it is shown only with the painter)
  return [(e.clientX - r.left) / state.zoom, (e.clientY - r.top) / state.zoom];
}
let drawing = null, panning = null;
stage.addEventListener("pointerdown", (e) => {
  if (!state.image) return;
  if (e.button === 1 || e.button === 2 || e.shiftKey || !document.body.hasAttribute("data-paint")) {
    panning = {x: e.clientX - state.x, y: e.clientY - state.y, from: [e.clientX, e.clientY],
               pick: e.button === 0 && !e.shiftKey};  // a click that does not move picks the preview's place
  } else {
    drawing = {tool: state.tool, size: Number($("size").value), points: [imagePoint(e)]};
    if (drawing.tool === "rect") drawing.points.push(imagePoint(e));
    redrawMask(drawing);
  }
  stage.setPointerCapture(e.pointerId);
});
stage.addEventListener("pointermove", (e) => {
  if (panning) { state.x = e.clientX - panning.x; state.y = e.clientY - panning.y; applyView(); return; }
  if (!drawing) return;
  if (drawing.tool === "rect") drawing.points[1] = imagePoint(e); else drawing.points.push(imagePoint(e));
  redrawMask(drawing);
});
stage.addEventListener("pointerup", (e) => {
  if (panning && panning.pick && Math.hypot(e.clientX - panning.from[0], e.clientY - panning.from[1]) < 4) pickCrop(e);
  if (drawing) {
    state.ops.push(drawing);
    state.history.push({kind: "stroke", op: drawing});
    state.redo = [];
    drawing = null;
    redrawMask();
  }
  panning = null;
});
stage.addEventListener("contextmenu", (e) => e.preventDefault());
for (const tool of ["brush", "eraser", "rect"]) {
  $(tool).onclick = () => {
    state.tool = tool;
    document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b.id === tool));
  };
}
$("clear").onclick = () => {
  if (!state.ops.length) return;
  state.history.push({kind: "clear", ops: state.ops}); state.redo = [];
  state.ops = []; redrawMask();
};

async function undo() {
  const entry = state.history.pop();
  if (!entry) return;
  if (entry.kind === "stroke") state.ops.pop();
  else if (entry.kind === "clear" || entry.kind === "draft") state.ops = entry.ops;
  else { await show(entry.from); state.ops = entry.ops || []; }
  state.redo.push(entry);
  redrawMask();
}
async function redo() {
  const entry = state.redo.pop();
  if (!entry) return;
  if (entry.kind === "stroke") state.ops.push(entry.op);
  else if (entry.kind === "clear") state.ops = [];
  else if (entry.kind === "draft") state.ops = [entry.op];
  else await show(entry.to);
  state.history.push(entry);
  redrawMask();
}
$("undo").onclick = undo;
$("redo").onclick = redo;
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT") return;
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); e.shiftKey ? redo() : undo(); }
  else if (e.key === "b") $("brush").click();
  else if (e.key === "e") $("eraser").click();
  else if (e.key === "r") $("rect").click();
});

function maskBlob() {
  // white = fill, black = keep, at the image's size; null where nothing is marked
  const c = document.createElement("canvas");
  c.width = mask.width; c.height = mask.height;
  const ctx = c.getContext("2d");
  const src = mask.getContext("2d").getImageData(0, 0, mask.width, mask.height);
  const out = ctx.createImageData(mask.width, mask.height);
  let marked = 0;
  for (let i = 0; i < src.data.length; i += 4) {
    const v = src.data[i + 3] > 0 ? 255 : 0;
    marked += v;
    out.data[i] = out.data[i + 1] = out.data[i + 2] = v; out.data[i + 3] = 255;
  }
  if (!marked) return Promise.resolve(null);
  ctx.putImageData(out, 0, 0);
  return new Promise((resolve) => c.toBlob(resolve, "image/png"));
}

// --- tasks and their options: the task list and the controls are built from GET /api/tasks ---------
// Each option a task's job takes is one control made from its entry in the schema, {name, type,
// default, min, max, choices, help}, with the help as its tooltip: a `number` is a number input
// (min, max from the schema), a `flag` a checkbox, a `choice` a select of its choices. Some have
// a widget of their own (their markup in index.html's #widgets): `sigma` the level slider with
// Auto and its preview, `adapt` the checkbox and its seconds, an `image id` the mask painter,
// `style` the thumbnails. An option several tasks take alike (adapt) is one control for all.
// A default null is the model's default: the control then starts at the page's own value below
// (UI), or sends nothing until it is set.
const UI = {
  sigma: {max: 75, value: 25},  // the slider stops at 75 (a job takes up to the schema's max, 255)
  strength: {range: true, value: 1},
  adapt: {value: 30},
  texture: {value: true},
  scale: {text: (v) => "x" + v},
  model: {empty: "(start the studio with --models DIR)"},
};
const taskControls = {};  // task -> its controls in the schema's order: {name, el, get, preview, later, paint}
const taskRules = {};  // task -> the schema's rules: where option `when` is `value`, `then` is one of `allowed`
const taskDrafts = {};  // task -> the schema's drafts: [{upload, label}], the uploads a model proposes

// the choices a rule rules out are disabled (and a ruled-out choice moves to the first allowed one)
function applyRules(task) {
  const byName = Object.fromEntries((taskControls[task] || []).map((c) => [c.name, c]));
  for (const then of new Set((taskRules[task] || []).map((r) => r.then))) {
    const select = byName[then] && byName[then].el.querySelector("select");
    if (!select) continue;
    const allowed = (taskRules[task] || []).filter((r) => r.then === then && byName[r.when]
      && byName[r.when].get() === r.value).map((r) => r.allowed.map(String));
    for (const option of select.options) option.disabled = allowed.some((a) => !a.includes(option.value));
    if (select.selectedOptions[0] && select.selectedOptions[0].disabled) {
      select.selectedIndex = [...select.options].findIndex((o) => !o.disabled);
    }
  }
}

function buildOptions(schema) {
  // the task list: every task the studio serves, in its order, with its label
  $("task").replaceChildren(...Object.entries(schema.tasks).map(([task, t]) => {
    const option = document.createElement("option");
    option.value = task;
    option.textContent = t.label || task;
    return option;
  }));
  PREVIEW_TASKS = Object.keys(schema.tasks).filter((task) => schema.tasks[task].preview);
  for (const [task, t] of Object.entries(schema.tasks)) { taskRules[task] = t.rules || []; taskDrafts[task] = t.drafts || []; }
  const made = new Map(), named = new Set();
  for (const [task, {options}] of Object.entries(schema.tasks)) {
    taskControls[task] = options.map((o) => {
      const key = JSON.stringify(o);
      if (!made.has(key)) {  // a name taken by another task's different option: this one's id is task-name
        const c = Object.assign({name: o.name, preview: true, later: false, paint: false},
                                control(o, UI[o.name] || {}, named.has(o.name) ? `${task}-${o.name}` : o.name));
        c.el.dataset.option = o.name;
        named.add(o.name); made.set(key, c);
        $("options").append(c.el);
      }
      return made.get(key);
    });
  }
}

function control(o, ui, id) {
  const own = id === o.name;  // a widget's elements have fixed ids: the first option of its name gets it
  if (own && o.name === "sigma" && o.type === "number") return sigmaWidget(o, ui);
  if (own && o.name === "adapt" && o.type === "number") return adaptWidget(o, ui);
  if (own && o.name === "style" && o.type === "choice") return styleWidget(o);
  if (o.type === "image id" && $("widgets").contains($("paint-widget"))) return paintWidget();
  const el = document.createElement("span");
  let input, get;
  if (o.type === "number" || o.type === "int") {
    input = document.createElement("input");
    input.type = ui.range ? "range" : "number";
    if (o.min !== null) input.min = o.min;
    if (o.max !== null) input.max = o.max;
    input.step = o.step ?? (o.type === "int" ? 1 : "any");
    input.value = o.default ?? ui.value ?? (ui.range ? o.min : "");
    get = () => {
      if (input.validity.badInput) throw new Error(`${o.name}: give a number`);
      return input.value === "" ? undefined : Number(input.value);  // empty: the model's default
    };
  } else if (o.type === "flag") {
    input = document.createElement("input");
    input.type = "checkbox";
    const start = o.default ?? ui.value ?? null;
    if (start === null) input.indeterminate = true; else input.checked = start;  // unset: the model's default
    get = () => (input.indeterminate ? undefined : input.checked);
  } else if (o.type === "choice") {
    const choices = o.choices || [];
    input = document.createElement("select");
    input.replaceChildren(...(choices.length ? choices : [""]).map((c) => {
      const option = document.createElement("option");
      option.value = String(c);
      option.textContent = choices.length ? (ui.text ? ui.text(c) : String(c)) : (ui.empty || "(none)");
      return option;
    }));
    input.selectedIndex = Math.max(0, choices.indexOf(o.default));
    get = () => (choices.length ? choices[input.selectedIndex] : "");  // the choice itself: 2, not "2"
  } else {  // a type this page does not know (or a second image): said, and nothing sent
    el.textContent = `${o.name}: not on this page`;
    el.title = o.help;
    return {el, get: () => undefined, preview: false};
  }
  input.id = id;
  const label = document.createElement("label");
  label.title = o.help;
  if (o.type === "flag") label.append(input, " " + o.name); else label.append(o.name + " ", input);
  el.append(label);
  return {el, get};
}

function sigmaWidget(o, ui) {
  const slider = $("sigma");
  slider.min = o.min ?? 0;
  slider.max = Math.min(o.max ?? ui.max, ui.max);
  slider.step = o.step ?? 1;
  slider.value = o.default ?? ui.value;
  $("sigma-auto").checked = o.default === null;  // null: blind
  $("sigma-label").title = o.help + " Click the photo to preview another place.";
  showSigma();
  return {el: $("sigma-widget"), get: () => ($("sigma-auto").checked ? undefined : Number(slider.value))};
}
function showSigma() {
  const auto = $("sigma-auto").checked;
  $("sigma-value").textContent = auto ? "auto" : $("sigma").value;
  $("sigma").classList.toggle("auto", auto);
}
$("sigma").oninput = () => { $("sigma-auto").checked = false; showSigma(); schedulePreview(300); };
$("sigma-auto").onchange = () => { showSigma(); schedulePreview(0); };

// "Adapt to this photo": seconds to fine-tune a copy of the model on the photo first (0: off)
function adaptWidget(o, ui) {
  const seconds = $("adapt-seconds"), on = Boolean(o.default);  // null or 0: off
  if (o.min !== null) seconds.min = o.min;
  if (o.max !== null) seconds.max = o.max;
  seconds.step = o.step ?? 1;
  seconds.value = on ? o.default : Math.min(Math.max(ui.value, o.min ?? ui.value), o.max ?? ui.value);
  $("adapt").checked = on;
  $("adapt").onchange();
  $("adapt-label").title = o.help;
  return {el: $("adapting"), get: adaptSeconds, preview: false};
}
$("adapt").onchange = () => { $("adapt-seconds").disabled = !$("adapt").checked; };
function adaptSeconds() {
  if (!$("adapt").checked) return 0;
  const s = $("adapt-seconds"), v = s.value;
  if (v === "" || !Number.isFinite(Number(v))) throw new Error(`adapt: give the seconds to adapt for (${s.min} to ${s.max})`);
  return Number(v);
}

// the style thumbnails: one button a choice
function styleWidget(o) {
  const box = $("styles"), first = o.choices.includes(o.default) ? o.default : o.choices[0];
  box.title = o.help;
  box.replaceChildren(...o.choices.map((name) => {
    const b = document.createElement("button");
    b.className = "style" + (name === first ? " active" : ""); b.dataset.style = name; b.title = name;
    const img = document.createElement("img"), label = document.createElement("span");
    label.textContent = name;
    b.append(img, label);
    b.onclick = () => {
      box.querySelectorAll(".style").forEach((s) => s.classList.toggle("active", s === b));
      if (preview.wanted) schedulePreview(0);  // the preview shown: now in this style
    };
    api(`/api/styles/${encodeURIComponent(name)}/thumbnail`).then((r) => r.blob())
      .then((blob) => { img.src = URL.createObjectURL(blob); }).catch(() => {});
    return b;
  }));
  return {el: box, get: () => { const chosen = box.querySelector(".style.active"); return chosen ? chosen.dataset.style : ""; }};
}

// the mask painter: the image id sent is the painted mask's, uploaded when the job is run
function paintWidget() {
  return {el: $("paint-widget"), paint: true, preview: false, later: true, get: async () => {
    const blob = await maskBlob();
    if (!blob) throw new Error("paint over what to remove first");
    const res = await api("/api/images", {method: "POST", body: blob,
      headers: {"X-Filename": "mask.png", "Content-Type": "image/png"}});
    return (await res.json()).id;
  }};
}

function showOptions() {
  const task = $("task").value, mine = taskControls[task] || [];
  document.body.dataset.task = task;
  document.querySelectorAll("#options > span").forEach((s) => s.classList.remove("shown"));
  mine.forEach((c) => { $("options").append(c.el); c.el.classList.add("shown"); });  // in this task's order
  document.body.toggleAttribute("data-paint", mine.some((c) => c.paint));
  applyRules(task);
  hidePreview();
  const drafted = paintDraft(task);
  $("draft").hidden = !drafted;
  if (drafted) { $("draft").textContent = drafted.label; if (!state.ops.length) draft(); }
}

// --- drafts: a model's mask in the painter, to accept, erase false hits from or add to, then run ----
function paintDraft(task) {  // the task's draft of its painted upload, if it has one
  const painted = (taskControls[task] || []).find((c) => c.paint);
  return painted && (taskDrafts[task] || []).find((d) => d.upload === painted.name);
}
let drafting = 0;  // the latest draft asked for: an older answer, or one for a mask edited meanwhile, is dropped
async function draft() {
  const task = $("task").value, d = paintDraft(task), image = state.image, ops = state.ops, asked = ++drafting;
  if (!d || !image) return;
  document.body.dataset.draft = "busy";
  $("draft").disabled = true;
  const running = `${d.label}: running…`;
  message(running, true);
  let bitmap;
  try {
    const body = JSON.stringify(Object.assign({task, image: image.id, options: collect(task, true), upload: d.upload},
      image.clip ? {frame: state.frame} : {}));
    const res = await api("/api/draft", {method: "POST", headers: {"Content-Type": "application/json"}, body});
    bitmap = await createImageBitmap(await res.blob());
  } catch (e) {
    if (asked === drafting) { $("draft").disabled = false; document.body.dataset.draft = "error"; message(`${d.label}: ${e.message}`); }
    return;
  }
  if (asked !== drafting) return;  // a newer draft is under way
  $("draft").disabled = false;
  if (state.image !== image || $("task").value !== task || state.ops !== ops || state.job) {
    document.body.dataset.draft = "stale";  // another photo or task, or the mask was edited (or run) meanwhile
    if ($("message").textContent === running) message("");
    return;
  }
  const c = document.createElement("canvas");  // white -> the painter's colour, black -> nothing
  c.width = bitmap.width; c.height = bitmap.height;
  const ctx = c.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const px = ctx.getImageData(0, 0, c.width, c.height);
  let marked = 0;
  for (let i = 0; i < px.data.length; i += 4) {
    const on = px.data[i] > 127;
    marked += on;
    px.data[i] = 255; px.data[i + 1] = 40; px.data[i + 2] = 90; px.data[i + 3] = on ? 255 : 0;
  }
  ctx.putImageData(px, 0, 0);
  const op = {tool: "draft", canvas: c, points: []};
  state.history.push({kind: "draft", ops: state.ops, op}); state.redo = [];
  state.ops = [op];
  redrawMask();
  document.body.dataset.draft = "done";
  const share = (100 * marked / (c.width * c.height)).toFixed(2);
  message(`${d.label}: ${marked ? share + "% of the photo marked: erase false hits, paint missed ones, then Run" : "nothing found: paint what to mend, or raise the sensitivity"}`, true);
}
$("draft").onclick = draft;
$("task").onchange = showOptions;
// a control of the task shown changed: its preview (the widgets ask for theirs themselves)
$("options").addEventListener("change", () => applyRules($("task").value));  // a choice another rules on
$("options").addEventListener("input", (e) => {
  const task = $("task").value, c = (taskControls[task] || []).find((k) => k.el.contains(e.target));
  if (c && c.preview && PREVIEW_TASKS.includes(task) && !e.target.closest("#sigma-widget, #styles")) schedulePreview(300);
});

// the task's options as the job takes them, each control's value (none where it has none: the
// model's default); `forPreview`: only those a preview takes (not adapt, no mask upload)
function collect(task, forPreview) {
  const out = {};
  for (const c of taskControls[task] || []) {
    if (c.later || (forPreview && !c.preview)) continue;
    const v = c.get();
    if (v !== undefined) out[c.name] = v;
  }
  return out;
}
async function options(task) {
  if (!taskControls[task]) throw new Error(`${task}: the page has no options for it (GET /api/tasks did not answer)`);
  const out = collect(task, false);
  for (const c of taskControls[task]) if (c.later) out[c.name] = await c.get();
  return out;
}

// --- preview: the task's options on a crop of the image, "before | after" ------------------------
// POST /api/preview runs the job's model on the crop at once. One request at a time: when it
// answers for options or a place that have changed meanwhile, its answer is dropped (stale) and
// the newest is asked for.
let PREVIEW_TASKS = [];  // the tasks whose options preview live on a crop (the schema's `preview`)
const preview = {point: null, wanted: false, timer: null, inflight: null, shown: null, said: null, count: 0, error: null};

function previewBody() {
  const task = $("task").value;
  if (!state.image || !PREVIEW_TASKS.includes(task)) return null;
  const options = collect(task, true);
  if (Object.values(options).includes("")) return null;  // nothing to choose from (no style)
  const [x, y] = preview.point || [Math.floor(state.image.width / 2), Math.floor(state.image.height / 2)];
  return JSON.stringify(Object.assign({task, image: state.image.id, options, crop: {x, y}},
    state.image.clip ? {frame: state.frame} : {}));
}
function schedulePreview(delay) {
  preview.wanted = true;
  clearTimeout(preview.timer);
  preview.timer = setTimeout(requestPreview, delay);
}
function hidePreview() {
  clearTimeout(preview.timer);
  preview.wanted = false; preview.shown = null;
  $("preview").hidden = true; $("crop-box").hidden = true;
  clearPair();  // it showed another image or task: never shown again while the next is under way
}
function clearPair() {
  const before = $("preview-before"), after = $("preview-after");
  before.getContext("2d").clearRect(0, 0, before.width, before.height);
  if (after.src) URL.revokeObjectURL(after.src);
  after.removeAttribute("src");
}
function pickCrop(e) {
  if (!state.image || !PREVIEW_TASKS.includes($("task").value)) return;
  const [x, y] = imagePoint(e).map(Math.floor);
  if (x < 0 || y < 0 || x >= state.image.width || y >= state.image.height) return;  // beside the photo
  preview.point = [x, y];
  schedulePreview(0);
}
function previewState(kind, text) {
  $("preview").dataset.state = kind;
  $("preview-state").textContent = text;
}
async function requestPreview() {
  const body = previewBody();
  if (!preview.wanted || !body) { hidePreview(); return; }
  if (preview.inflight) return;  // the one in flight asks again when it answers
  if (body === preview.shown) { previewState(...preview.said); return; }  // back to what is shown
  preview.inflight = body;
  $("preview").hidden = false;
  previewState("busy", "previewing…");
  let blob = null, box = null, error = null;
  try {
    const res = await api("/api/preview", {method: "POST", headers: {"Content-Type": "application/json"}, body});
    box = res.headers.get("X-Crop").split(",").map(Number);  // left, top, width, height
    blob = await res.blob();
  } catch (e) { error = e; }
  preview.inflight = null;
  if (!preview.wanted) return;
  if (previewBody() !== body) { requestPreview(); return; }  // superseded while it ran: a stale answer
  if (error) {  // one line; nothing kept: the same preview asked again is sent again
    preview.shown = null; preview.error = error.message;
    clearPair(); $("crop-box").hidden = true;
    previewState("error", "no preview");
    message(error.message);
    return;
  }
  const after = new Image();
  after.src = URL.createObjectURL(blob);
  try { await after.decode(); } catch (e) { /* shown when it loads */ }
  if (!preview.wanted || previewBody() !== body) {  // changed while it decoded
    URL.revokeObjectURL(after.src);
    requestPreview();
    return;
  }
  const [left, top, w, h] = box, before = $("preview-before"), old = $("preview-after");
  before.width = w; before.height = h;
  before.getContext("2d").drawImage(photo, left, top, w, h, 0, 0, w, h);
  if (old.src) URL.revokeObjectURL(old.src);
  after.id = old.id; after.alt = old.alt;
  old.replaceWith(after);
  const marker = $("crop-box");
  Object.assign(marker.style, {left: left + "px", top: top + "px", width: w + "px", height: h + "px"});
  marker.hidden = false;
  const {task, options} = JSON.parse(body);
  if (preview.error !== null && $("message").textContent === preview.error) message("");  // it works again
  preview.error = null;
  preview.shown = body;
  preview.said = ["shown", task === "denoise" ? (options.sigma === undefined ? "auto level" : `level ${options.sigma}`)
    : `strength ${options.strength}`];
  $("preview").dataset.options = JSON.stringify(options);
  $("preview").dataset.count = ++preview.count;
  previewState(...preview.said);
}

async function run() {
  const task = $("task").value;
  let job;
  try {
    const opts = await options(task);
    job = await (await api("/api/jobs", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({task, image: state.image.id, options: opts})})).json();
  } catch (e) { message(e.message); return; }
  state.job = job.id;
  document.body.dataset.state = "running";
  document.body.dataset.job = job.id;
  $("run").disabled = true; $("cancel").hidden = false; $("progress").hidden = false; $("progress").value = 0;
  message(task + ": queued", true);
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    try { job = await (await api("/api/jobs/" + job.id)).json(); } catch (e) { message(e.message); break; }
    const p = job.progress;
    $("progress").value = p.total ? p.done / p.total : 0;
    document.body.dataset.stage = p.stage;
    if (job.status === "running") {
      message(p.stage === "adapt" ? `${task}: adapting to this photo, ` + (p.total ? `step ${p.done} / ${p.total}` : "preparing")
        : p.stage === "frames" ? `${task}: frame ${p.done} / ${p.total}`
        : `${task}: pass ${p.passes}, tiles ${p.done} / ${p.total}`, true);
    }
    if (["done", "failed", "cancelled"].includes(job.status)) break;
  }
  $("run").disabled = false; $("cancel").hidden = true; $("progress").hidden = true;
  state.job = null;
  if (job.status === "done") {
    const result = await (await api("/api/images/" + job.result)).json();
    const from = state.image, ops = state.ops;
    state.before = from;
    state.history.push({kind: "image", from, to: result, ops}); state.redo = [];
    await show(result);
    $("compare").disabled = false;
    document.body.dataset.state = "done";
    document.body.dataset.result = result.id;
    message(`${task}: done, ${result.width}x${result.height}` + (result.clip ? `, ${clipFacts(result.clip)}` : "")
      + (job.note ? ` (${job.note})` : ""), true);
  } else {
    document.body.dataset.state = job.status === "failed" ? "error" : "ready";
    const note = job.note ? ` (${job.note})` : "";
    message(job.status === "failed" ? `${task} failed: ${job.error}${note}` : `${task}: cancelled`, job.status !== "failed");
  }
}
$("run").onclick = run;
$("cancel").onclick = () => { if (state.job) api(`/api/jobs/${state.job}/cancel`, {method: "POST"}).catch((e) => message(e.message)); };

// hold to compare with the image before the last run (a clip: the frame shown, before and after)
let peeking = false;
async function peek(on) {
  if (!state.before) return;
  peeking = on;
  const image = on ? state.before : state.history.filter((h) => h.kind === "image").slice(-1)[0].to;
  const bitmap = await createImageBitmap(await (await api(picture(image))).blob());
  if (peeking !== on) return;  // released (or pressed again) meanwhile
  photo.getContext("2d").drawImage(bitmap, 0, 0, photo.width, photo.height);
  document.body.toggleAttribute("data-peek", on);
}
$("compare").addEventListener("pointerdown", () => peek(true));
$("compare").addEventListener("pointerup", () => peek(false));
$("compare").addEventListener("pointerleave", () => peek(false));

async function start() {
  try {
    buildOptions(await (await api("/api/tasks")).json());
  } catch (e) { message(e.message); }
  showOptions();
  new ResizeObserver(() => fit()).observe(stage);  // the window or the toolbar changed size
}
const optionsBuilt = start();
