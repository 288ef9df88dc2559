// The latent explorer: wires the page to the service's public API (see README.md, "HTTP API").

import { api, latestOnly } from "./api.js";
import { klChart, normChart, posteriorChart } from "./charts.js";
import { DrawingPad, paintInput, toNested } from "./draw.js";

const $ = (id) => document.getElementById(id);
const FIGURES = [
  ["reconstructions", "Held-out images (top) and their reconstructions"],
  ["samples", "Samples from the prior"],
  ["interpolation", "Interpolations between held-out images"],
  ["latent_map", "Latent means of held-out images, first two principal components, coloured by label"],
];
const SLIDER_LIMIT = 3;

const state = {
  generation: 0, // bumped on every model or label change: answers for an older one are dropped
  ref: null, // "name:version", sent as `model`
  manifest: null,
  order: [], // latent dimensions, most KL first
  label: null,
  pixels: null, // the drawing at the model's size, Float32Array [C*H*W]
  posterior: null, // { mu, sigma } of the drawing
  z: [], // the latent the sliders steer
  shownDims: 8,
  endpoints: { a: null, b: null }, // { body: {latent} | {array}, src, caption }
  paths: null, // { lerp, slerp } answers of /interpolate
  t: 0.5, // where along the path the visitor looks, 0..1
};

// ---------------------------------------------------------------- requests

/** A request body for the chosen model (and label, for a conditional one). */
function body(fields) {
  const out = { model: state.ref, ...fields };
  if (state.label !== null) out.label = state.label;
  return out;
}

function spec() {
  return state.manifest.image;
}

/** Shows a base64 PNG in the <img> `id` (its alt text only once there is an image), or none. */
function showPng(id, png) {
  const image = $(id);
  if (png === null) {
    image.removeAttribute("src");
    image.alt = "";
  } else {
    image.src = `data:image/png;base64,${png}`;
    image.alt = image.dataset.alt;
  }
}

function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.dataset.kind = kind;
}

function showError(error) {
  setStatus(error.message || String(error), "error");
}

/** Marks a card busy while `promise` runs. */
async function busy(card, promise) {
  const element = $(card);
  element.classList.add("busy");
  try {
    return await promise;
  } finally {
    element.classList.remove("busy");
  }
}

const current = (gen) => gen === state.generation;

const encoder = latestOnly(
  ({ gen, pixels }) =>
    busy("encode-card", (async () => {
      const encoded = await api("/encode", body({ arrays: [toNested(pixels, spec())] }));
      const posterior = encoded.latents[0];
      const decoded = await api("/decode", body({ latents: [posterior.mu] }));
      return { gen, posterior, image: decoded.images[0] };
    })()),
  { delayMs: 90, maxWaitMs: 250 },
  showEncoded,
  showError,
);

const sliderDecoder = latestOnly(
  ({ gen, z }) => busy("sliders-card", api("/decode", body({ latents: [z] })).then((r) => ({ gen, r }))),
  { delayMs: 60, maxWaitMs: 150 },
  ({ gen, r }) => current(gen) && showPng("slider-image", r.images[0]),
  showError,
  showMeter,
);

// What each dimension does: the sliders' z with one dimension swept over TRAVERSAL, one /decode.
const TRAVERSAL = [-3, -2, -1, 0, 1, 2, 3];
const traverser = latestOnly(
  ({ gen, z, dims }) => {
    const latents = dims.flatMap((dim) => TRAVERSAL.map((v) => z.map((old, d) => (d === dim ? v : old))));
    return busy("sliders-card", api("/decode", body({ latents })).then((r) => ({ gen, r, dims })));
  },
  { delayMs: 250 },
  ({ gen, r, dims }) => current(gen) && showTraversal(r.images, dims),
  showError,
);

const sampler = latestOnly(
  ({ gen, ...request }) => busy("samples-card", api("/sample", body(request)).then((r) => ({ gen, r }))),
  { delayMs: 120, maxWaitMs: 400 },
  ({ gen, r }) => current(gen) && showSamples(r),
  showError,
);

const interpolator = latestOnly(
  ({ gen, start, end, steps }) =>
    busy("interp-card", Promise.all(
      ["lerp", "slerp"].map((method) => api("/interpolate", body({ start, end, steps, method }))),
    ).then(([lerp, slerp]) => ({ gen, lerp, slerp }))),
  { delayMs: 0 },
  ({ gen, lerp, slerp }) => current(gen) && showPaths(lerp, slerp),
  showError,
);

// ---------------------------------------------------------------- models and the report

async function loadModels() {
  const listing = await api("/models");
  const select = $("model");
  select.replaceChildren();
  let chosen = null;
  for (const model of listing.models) {
    for (const entry of model.versions) {
      const ref = `${model.name}:${entry.version}`;
      const isDefault = model.name === listing.default && entry.version === model.default_version;
      const option = new Option(`${model.name} v${entry.version}${isDefault ? " (default)" : ""}`, ref);
      option.disabled = Boolean(entry.load_error);
      option.entry = { ...entry, name: model.name };
      select.add(option);
      if (isDefault || (chosen === null && !option.disabled)) chosen = option;
    }
  }
  if (chosen === null) throw new Error("the service has no model that loads; train one with POST /jobs");
  chosen.selected = true;
  await selectModel(chosen.entry);
}

async function selectModel(entry) {
  state.generation += 1;
  for (const scheduler of [encoder, sliderDecoder, traverser, sampler, interpolator]) scheduler.cancel();
  const manifest = entry.manifest;
  state.ref = `${entry.name}:${entry.version}`;
  state.manifest = manifest;
  const kl = manifest.metrics?.kl_per_dim ?? [];
  state.order = [...Array(manifest.latent_dim).keys()];
  if (kl.length === manifest.latent_dim) state.order.sort((a, b) => kl[b] - kl[a]);
  // A conditional model takes `label`: one of its label_values, shown by its class name.
  const conditional = manifest.kind === "cvae" && (manifest.classes ?? []).length > 0;
  $("label-picker").hidden = !conditional;
  if (conditional) {
    const values = manifest.label_values?.length ? manifest.label_values : manifest.classes.map((_, i) => i);
    const labels = $("label");
    labels.replaceChildren(...manifest.classes.map((name, i) => new Option(name, String(values[i]))));
    state.label = values[0];
  } else {
    state.label = null;
  }
  const { height, width, channels } = manifest.image;
  const provider = entry.provider ? ` · ${entry.provider.replace("ExecutionProvider", "")}` : "";
  setStatus(`${state.ref} · ${manifest.kind.toUpperCase()} · ${manifest.latent_dim}-d latent · ${width}×${height}×${channels}${provider}`, "ok");
  $("input-size").textContent = `${width}×${height}`;
  state.endpoints = { a: null, b: null };
  state.posterior = null;
  state.paths = null;
  for (const id of ["samples", "strip-lerp", "strip-slerp", "traversal"]) $(id).replaceChildren();
  renderReport(entry);
  buildSliders(new Array(manifest.latent_dim).fill(0));
  refreshAll();
  await pickRandomEndpoints();
}

/** Re-asks everything on show for the current model and label. */
function refreshAll() {
  requestSamples();
  sliderDecoder.request({ gen: state.generation, z: state.z.slice() });
  requestTraversal();
  drawingChanged();
  if (state.endpoints.a && state.endpoints.b) requestPaths();
}

function renderReport(entry) {
  const { manifest } = entry;
  const metrics = manifest.metrics;
  const training = manifest.training;
  const rows = [];
  const nats = (v) => `${v.toFixed(1)} nats`;
  if (metrics) {
    rows.push(["IWAE bound on −log p(x)", `${nats(metrics.iwae_nll)} (K = ${metrics.k})`, "lower is better: an estimate of how many nats the model needs per held-out image"]);
    rows.push(["ELBO", nats(metrics.elbo), "the training objective on held-out images; the IWAE bound is tighter"]);
    rows.push(["reconstruction", nats(metrics.reconstruction_nll), "−E log p(x|z): how well images come back"]);
    rows.push(["KL to the prior", nats(metrics.kl), "what the code costs: KL(q(z|x) ‖ N(0, I)), summed over dimensions"]);
    rows.push(["active units", `${metrics.active_units} of ${manifest.latent_dim}`, "dimensions whose mean moves with the image (Cov > 0.01); the others collapsed to the prior"]);
    rows.push(["evaluated on", `${metrics.eval_images} held-out images`, ""]);
  }
  if (training) {
    const config = training.config ?? {};
    const arch = [config.arch, (config.hidden ?? []).join("-"), config.activation].filter(Boolean).join(" ");
    rows.push(["trained on", `${training.dataset} (${training.train_images} images)`, ""]);
    rows.push(["network", `${arch || "?"}, ${manifest.likelihood} decoder`, ""]);
    rows.push(["training", `${training.epochs_run} epochs in ${formatSeconds(training.seconds)}`, ""]);
  }
  if (manifest.parity?.max_abs_err !== undefined) {
    rows.push(["ONNX vs PyTorch", `max |error| ${manifest.parity.max_abs_err.toExponential(1)}`, "checked before publishing"]);
  }
  const list = $("metrics");
  list.replaceChildren();
  for (const [term, value, hint] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    if (hint) dt.title = dd.title = hint;
    list.append(dt, dd);
  }
  const kl = metrics?.kl_per_dim ?? [];
  $("kl-block").hidden = kl.length === 0;
  if (kl.length) klChart($("kl-chart"), kl, [...kl.keys()].sort((a, b) => kl[b] - kl[a]));
  const figures = $("figures");
  figures.replaceChildren();
  const files = manifest.files ?? {};
  for (const [name, caption] of FIGURES) {
    if (!(`${name}.png` in files)) continue;
    const figure = document.createElement("figure");
    const image = new Image();
    image.alt = caption;
    image.loading = "lazy";
    if (name === "latent_map") image.className = "smooth";
    figure.className = `fig-${name}`;
    image.src = `/models/${encodeURIComponent(entry.name)}/versions/${entry.version}/report/${name}.png`;
    const text = document.createElement("figcaption");
    text.textContent = caption;
    figure.append(image, text);
    figures.append(figure);
  }
  $("figures-empty").hidden = figures.children.length > 0;
}

function formatSeconds(seconds) {
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// ---------------------------------------------------------------- draw, encode, reconstruct

let pad;

function drawingChanged() {
  if (!state.manifest || !pad) return;
  $("pad-hint").hidden = !pad.isEmpty();
  if (pad.isEmpty()) {
    state.pixels = null;
    state.posterior = null;
    encoder.cancel();
    $("input-preview").getContext("2d").clearRect(0, 0, 9999, 9999);
    showPng("recon", null);
    const dims = state.manifest.latent_dim;
    posteriorChart($("posterior"), new Array(dims).fill(0), new Array(dims).fill(1), state.order);
    $("posterior-summary").textContent = "Nothing drawn yet: every dimension is still the prior N(0, 1).";
    setDrawingButtons(false);
    return;
  }
  state.pixels = pad.toModelInput(spec(), $("frame").checked);
  paintInput($("input-preview"), state.pixels, spec());
  encoder.request({ gen: state.generation, pixels: state.pixels });
}

function showEncoded({ gen, posterior, image }) {
  if (!current(gen) || pad.isEmpty()) return;
  state.posterior = posterior;
  showPng("recon", image);
  posteriorChart($("posterior"), posterior.mu, posterior.sigma, state.order);
  let kl = 0;
  for (let d = 0; d < posterior.mu.length; d += 1) {
    const s = posterior.sigma[d];
    kl += 0.5 * (posterior.mu[d] ** 2 + s * s - 1 - 2 * Math.log(s));
  }
  const used = posterior.sigma.filter((s) => s < 0.85).length;
  $("posterior-summary").textContent =
    `KL to the prior ${kl.toFixed(1)} nats · ${used} of ${posterior.mu.length} dimensions narrowed below σ = 0.85${posterior.cached ? " · from the cache" : ""}`;
  setDrawingButtons(true);
}

function setDrawingButtons(enabled) {
  for (const id of ["to-sliders", "a-drawing", "b-drawing"]) $(id).disabled = !enabled;
}

// ---------------------------------------------------------------- latent sliders

function buildSliders(z) {
  state.z = z.slice();
  const container = $("sliders");
  container.replaceChildren();
  const kl = state.manifest.metrics?.kl_per_dim ?? [];
  const klKnown = kl.length === state.manifest.latent_dim;
  const dims = state.order.slice(0, state.shownDims);
  for (const dim of dims) {
    const row = document.createElement("label");
    row.className = "slider";
    const name = document.createElement("span");
    name.className = "dim-name";
    name.textContent = `z${dim}`;
    const info = document.createElement("span");
    info.className = "dim-kl";
    info.textContent = klKnown ? `KL ${kl[dim].toFixed(2)}` : "";
    const input = document.createElement("input");
    input.type = "range";
    input.min = String(-SLIDER_LIMIT);
    input.max = String(SLIDER_LIMIT);
    input.step = "0.01";
    input.dataset.dim = String(dim);
    input.setAttribute("aria-label", `latent dimension ${dim}`);
    const value = document.createElement("output");
    input.addEventListener("input", () => {
      state.z[dim] = Number(input.value);
      value.textContent = Number(input.value).toFixed(2);
      sliderDecoder.request({ gen: state.generation, z: state.z.slice() });
    });
    input.addEventListener("change", requestTraversal);
    row.append(name, input, value, info);
    container.append(row);
  }
  const hidden = state.manifest.latent_dim - dims.length;
  const which = klKnown ? `The ${dims.length} dimensions the model uses most (largest KL first)` : `The first ${dims.length} dimensions`;
  $("sliders-note").textContent = hidden > 0
    ? `${which}; the other ${hidden} keep their values.`
    : `All ${dims.length} dimensions${klKnown ? ", largest KL first" : ""}.`;
  syncSliders();
  requestTraversal();
}

function requestTraversal() {
  const dims = state.order.slice(0, Math.min(state.shownDims, 8));
  traverser.request({ gen: state.generation, z: state.z.slice(), dims });
}

function showTraversal(images, dims) {
  const grid = $("traversal");
  grid.style.setProperty("--columns", String(TRAVERSAL.length));
  const cells = [document.createElement("span")];
  for (const v of TRAVERSAL) {
    const head = document.createElement("span");
    head.className = "axis-label";
    head.textContent = v > 0 ? `+${v}` : String(v);
    cells.push(head);
  }
  dims.forEach((dim, row) => {
    const name = document.createElement("span");
    name.className = "dim-name";
    name.textContent = `z${dim}`;
    cells.push(name);
    TRAVERSAL.forEach((v, col) => {
      const image = new Image();
      image.src = `data:image/png;base64,${images[row * TRAVERSAL.length + col]}`;
      image.alt = `z${dim} = ${v}`;
      image.title = `z${dim} = ${v}`;
      image.className = "px";
      cells.push(image);
    });
  });
  grid.replaceChildren(...cells);
}

function syncSliders() {
  for (const input of document.querySelectorAll("#sliders input")) {
    const v = state.z[Number(input.dataset.dim)];
    input.value = String(v);
    input.nextElementSibling.textContent = v.toFixed(2);
  }
}

function steer(z) {
  state.z = z.slice();
  syncSliders();
  sliderDecoder.request({ gen: state.generation, z: state.z.slice() });
  requestTraversal();
  $("sliders-card").classList.remove("flash");
  void $("sliders-card").offsetWidth;
  $("sliders-card").classList.add("flash");
}

function showMeter() {
  const { requested, sent, inFlight } = sliderDecoder.stats;
  $("decode-meter").textContent =
    `${requested} slider positions → ${sent} /decode requests · ${inFlight} in flight`;
}

// ---------------------------------------------------------------- interpolation

async function randomEndpoint() {
  const seed = randomSeed();
  const reply = await api("/sample", body({ n: 1, seed }));
  return { body: { latent: reply.latents[0] }, src: reply.images[0], caption: `sample, seed ${seed}` };
}

async function pickRandomEndpoints() {
  const gen = state.generation;
  const reply = await busy("interp-card", api("/sample", body({ n: 2, seed: 7 })));
  if (!current(gen)) return;
  state.endpoints.a = { body: { latent: reply.latents[0] }, src: reply.images[0], caption: "sample, seed 7 #1" };
  state.endpoints.b = { body: { latent: reply.latents[1] }, src: reply.images[1], caption: "sample, seed 7 #2" };
  showEndpoints();
  requestPaths();
}

function drawingEndpoint() {
  const canvas = $("input-preview");
  return { body: { array: toNested(state.pixels, spec()) }, src: canvas.toDataURL("image/png").split(",")[1], caption: "your drawing" };
}

function setEndpoint(which, endpoint) {
  state.endpoints[which] = endpoint;
  showEndpoints();
  requestPaths();
}

function showEndpoints() {
  for (const which of ["a", "b"]) {
    const endpoint = state.endpoints[which];
    if (!endpoint) continue;
    showPng(`${which}-image`, endpoint.src);
    $(`${which}-caption`).textContent = endpoint.caption;
  }
}

function requestPaths() {
  const { a, b } = state.endpoints;
  if (!a || !b) return;
  state.paths = null;
  interpolator.request({ gen: state.generation, start: a.body, end: b.body, steps: Number($("steps").value) });
}

function showPaths(lerp, slerp) {
  state.paths = { lerp, slerp };
  const steps = lerp.images.length;
  for (const [name, reply] of Object.entries(state.paths)) {
    const strip = $(`strip-${name}`);
    strip.style.setProperty("--steps", String(steps));
    strip.replaceChildren(...reply.images.map((png, i) => {
      const image = new Image();
      image.src = `data:image/png;base64,${png}`;
      image.alt = `${name} step ${i + 1} of ${steps}`;
      image.className = "px";
      image.addEventListener("click", () => {
        $("t").value = String(i);
        showStep(true);
      });
      return image;
    }));
  }
  // A new path keeps the place along it the visitor chose (the middle at first).
  const slider = $("t");
  slider.max = String(steps - 1);
  slider.value = String(Math.round(state.t * (steps - 1)));
  showStep();
}

function showStep(moved = false) {
  const slider = $("t");
  if (moved) state.t = Number(slider.max) > 0 ? Number(slider.value) / Number(slider.max) : 0.5;
  if (!state.paths) return;
  const i = Number(slider.value);
  const steps = state.paths.lerp.images.length;
  const t = i / (steps - 1);
  $("t-value").textContent = `t = ${t.toFixed(2)} (step ${i + 1} of ${steps})`;
  const norms = {};
  for (const [name, reply] of Object.entries(state.paths)) {
    norms[name] = reply.latents.map((z) => Math.hypot(...z));
    showPng(`big-${name}`, reply.images[i]);
    $(`norm-${name}`).textContent = `|z| = ${norms[name][i].toFixed(2)}`;
    const strip = $(`strip-${name}`);
    [...strip.children].forEach((image, j) => image.classList.toggle("current", j === i));
  }
  normChart($("norms"), [{ name: "lerp", values: norms.lerp }, { name: "slerp", values: norms.slerp }], i);
}

// ---------------------------------------------------------------- samples

function randomSeed() {
  return Math.floor(Math.random() * 1_000_000);
}

function requestSamples() {
  const temperature = Number($("temperature").value);
  const seed = Math.max(0, Math.floor(Number($("seed").value) || 0));
  $("temperature-value").textContent = temperature.toFixed(2);
  sampler.request({ gen: state.generation, n: Number($("count").value), temperature, seed });
}

function showSamples(reply) {
  const grid = $("samples");
  grid.replaceChildren(...reply.images.map((png, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tile";
    button.title = "steer this sample with the latent sliders";
    const image = new Image();
    image.src = `data:image/png;base64,${png}`;
    image.alt = `sample ${i + 1}`;
    image.className = "px";
    button.append(image);
    button.addEventListener("click", () => steer(reply.latents[i]));
    return button;
  }));
  grid.dataset.seed = String(reply.seed);
}

// ---------------------------------------------------------------- start-up

function wire() {
  pad = new DrawingPad($("pad"), drawingChanged);
  $("clear").addEventListener("click", () => {
    pad.clear();
    $("frame").checked = true;
    drawingChanged();
  });
  $("file").addEventListener("change", async (event) => {
    const [file] = event.target.files;
    if (file) await openImage(file);
    event.target.value = "";
  });
  const drop = $("pad-wrap");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", async (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    const [file] = event.dataTransfer.files;
    if (file) await openImage(file);
  });
  $("frame").addEventListener("change", drawingChanged);
  $("to-sliders").addEventListener("click", () => state.posterior && steer(state.posterior.mu));
  $("a-drawing").addEventListener("click", () => setEndpoint("a", drawingEndpoint()));
  $("b-drawing").addEventListener("click", () => setEndpoint("b", drawingEndpoint()));
  for (const which of ["a", "b"]) {
    $(`${which}-random`).addEventListener("click", () =>
      randomEndpoint().then((endpoint) => setEndpoint(which, endpoint), showError));
  }
  $("swap").addEventListener("click", () => {
    state.endpoints = { a: state.endpoints.b, b: state.endpoints.a };
    showEndpoints();
    requestPaths();
  });
  $("interpolate").addEventListener("click", requestPaths);
  $("steps").addEventListener("change", requestPaths);
  $("t").addEventListener("input", () => showStep(true));
  $("temperature").addEventListener("input", requestSamples);
  $("seed").addEventListener("change", requestSamples);
  $("count").addEventListener("change", requestSamples);
  $("new-seed").addEventListener("click", () => {
    $("seed").value = String(randomSeed());
    requestSamples();
  });
  $("resample").addEventListener("click", requestSamples);
  $("z-zero").addEventListener("click", () => steer(new Array(state.manifest.latent_dim).fill(0)));
  $("z-random").addEventListener("click", () =>
    api("/sample", body({ n: 1, seed: randomSeed() })).then((r) => steer(r.latents[0]), showError));
  $("dims-shown").addEventListener("change", (event) => {
    state.shownDims = event.target.value === "all" ? Infinity : Number(event.target.value);
    buildSliders(state.z);
  });
  $("model").addEventListener("change", (event) => {
    const option = event.target.selectedOptions[0];
    selectModel(option.entry).catch(showError);
  });
  $("label").addEventListener("change", (event) => {
    state.label = Number(event.target.value);
    state.generation += 1;
    refreshAll();
  });
}

async function openImage(file) {
  try {
    $("frame").checked = false;
    await pad.load(file);
  } catch (error) {
    showError(new Error(`could not read ${file.name} as an image`));
  }
}

async function start() {
  wire();
  try {
    await loadModels();
    document.body.dataset.ready = "true";
  } catch (error) {
    showError(error);
    document.body.dataset.ready = "error";
  }
}

start();
