// The latent explorer: wires the page to the service's public API (see README.md, "HTTP API").

import { api, latestOnly } from "./api.js";
import { normChart, posteriorChart } from "./charts.js";
import { DrawingPad, paintInput, toNested } from "./draw.js";
import { arrangePage } from "./layout.js";
import { renderReport } from "./report.js";
import { showSpatial, wireSpatial } from "./spatial.js";
import { showVideo, videoStatus, wireVideo } from "./video.js";
import {
  $, renderCodeGrid, renderSamples, renderStrip, renderTraversal, showPng as showPngIn, sliderRow, syncSliders,
} from "./views.js";

const SLIDER_LIMIT = 3;

const state = {
  generation: 0, // bumped on every model or label change: answers for an older one are dropped
  ref: null, // "name:version", sent as `model`
  manifest: null,
  kind: null, // the model kind's row from GET /models (what /encode returns, how it samples)
  order: [], // latent dimensions, most KL first
  label: null,
  pixels: null, // the drawing at the model's size, Float32Array [C*H*W]
  posterior: null, // the drawing's /encode entry: { mu, sigma } or, for a code grid, { codes, z_e }
  latent: null, // the drawing's latent: mu, or z_e for a model that encodes to codes
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

const showPng = (id, png) => showPngIn($(id), png);

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

/** Whether the model's /encode gives a code grid (a vqvae) rather than a Gaussian posterior. */
const encodesCodes = () => state.kind?.encoding === "codes";

const encoder = latestOnly(
  ({ gen, pixels }) =>
    busy("encode-card", (async () => {
      const encoded = await api("/encode", body({ arrays: [toNested(pixels, spec())] }));
      const posterior = encoded.latents[0];
      const latent = encodesCodes() ? posterior.z_e : posterior.mu;
      const decoded = await api("/decode", body({ latents: [latent] }));
      return { gen, posterior, latent, image: decoded.images[0] };
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
  ({ gen, r, dims }) => current(gen) && renderTraversal($("traversal"), r.images, dims, TRAVERSAL),
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
  state.kind = entry.kind;
  arrangePage(entry);
  showSpatial(entry);
  showVideo(entry);
  if (state.kind.video) {
    renderReport(entry);
    setStatus(videoStatus(state.ref, manifest), "ok");
    return;
  }
  if (state.kind.spatial) {
    renderReport(entry);
    const grid = manifest.spatial;
    setStatus(`${state.ref} · AUTOENCODER · ${grid.latent_channels}×h/${grid.downscale}×w/${grid.downscale} latent · any size`, "ok");
    return;
  }
  $("codes-block").hidden = !encodesCodes();
  $("posterior-block").hidden = encodesCodes();
  $("recon-caption").textContent = encodesCodes() ? "reconstruction, decode(z_e)" : "reconstruction, decode(μ)";
  const kl = manifest.metrics?.kl_per_dim ?? [];
  state.order = [...Array(manifest.latent_dim).keys()];
  if (kl.length === manifest.latent_dim) state.order.sort((a, b) => kl[b] - kl[a]);
  // A conditional model takes `label`: one of its label_values, shown by its class name.
  const conditional = state.kind.conditional && (manifest.classes ?? []).length > 0;
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
  state.latent = null;
  state.paths = null;
  for (const id of ["samples", "strip-lerp", "strip-slerp", "traversal"]) $(id).replaceChildren();
  renderReport(entry);
  buildSliders(new Array(manifest.latent_dim).fill(0));
  refreshAll();
  await pickRandomEndpoints();
}

/** Re-asks everything on show for the current model and label. */
function refreshAll() {
  if (state.kind?.spatial) return;
  requestSamples();
  sliderDecoder.request({ gen: state.generation, z: state.z.slice() });
  requestTraversal();
  drawingChanged();
  if (state.endpoints.a && state.endpoints.b) requestPaths();
}

// ---------------------------------------------------------------- draw, encode, reconstruct

let pad;

function drawingChanged() {
  if (!state.manifest || !pad || state.kind?.spatial) return;
  $("pad-hint").hidden = !pad.isEmpty();
  if (pad.isEmpty()) {
    state.pixels = null;
    state.posterior = null;
    state.latent = null;
    encoder.cancel();
    $("input-preview").getContext("2d").clearRect(0, 0, 9999, 9999);
    showPng("recon", null);
    setDrawingButtons(false);
    if (encodesCodes()) {
      $("code-grid").replaceChildren();
      $("codes-summary").textContent = "Nothing drawn yet.";
      return;
    }
    const dims = state.manifest.latent_dim;
    posteriorChart($("posterior"), new Array(dims).fill(0), new Array(dims).fill(1), state.order);
    $("posterior-summary").textContent = "Nothing drawn yet: every dimension is still the prior N(0, 1).";
    return;
  }
  state.pixels = pad.toModelInput(spec(), $("frame").checked);
  paintInput($("input-preview"), state.pixels, spec());
  encoder.request({ gen: state.generation, pixels: state.pixels });
}

function showEncoded({ gen, posterior, latent, image }) {
  if (!current(gen) || pad.isEmpty()) return;
  state.posterior = posterior;
  state.latent = latent;
  showPng("recon", image);
  setDrawingButtons(true);
  if (encodesCodes()) {
    showCodes(posterior.codes);
    return;
  }
  posteriorChart($("posterior"), posterior.mu, posterior.sigma, state.order);
  let kl = 0;
  for (let d = 0; d < posterior.mu.length; d += 1) {
    const s = posterior.sigma[d];
    kl += 0.5 * (posterior.mu[d] ** 2 + s * s - 1 - 2 * Math.log(s));
  }
  const used = posterior.sigma.filter((s) => s < 0.85).length;
  $("posterior-summary").textContent =
    `KL to the prior ${kl.toFixed(1)} nats · ${used} of ${posterior.mu.length} dimensions narrowed below σ = 0.85${posterior.cached ? " · from the cache" : ""}`;
}

/** A vqvae's encoding: its grid of code indices, and how many distinct codes it uses. */
function showCodes(codes) {
  const size = state.manifest.codebook_size;
  renderCodeGrid($("code-grid"), codes, size);
  const distinct = new Set(codes.flat()).size;
  const [h, w] = [codes.length, codes[0]?.length ?? 0];
  $("codes-summary").textContent = `${h}×${w} codes · ${distinct} distinct of the codebook's ${size} · the sliders steer z_e before quantization`;
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
    const onInput = (value) => {
      state.z[dim] = value;
      sliderDecoder.request({ gen: state.generation, z: state.z.slice() });
    };
    const klText = klKnown ? `KL ${kl[dim].toFixed(2)}` : "";
    container.append(sliderRow(dim, SLIDER_LIMIT, klText, onInput, requestTraversal));
  }
  const hidden = state.manifest.latent_dim - dims.length;
  const which = klKnown ? `The ${dims.length} dimensions the model uses most (largest KL first)` : `The first ${dims.length} dimensions`;
  $("sliders-note").textContent = hidden > 0
    ? `${which}; the other ${hidden} keep their values.`
    : `All ${dims.length} dimensions${klKnown ? ", largest KL first" : ""}.`;
  syncSliders($("sliders"), state.z);
  requestTraversal();
}

function requestTraversal() {
  const dims = state.order.slice(0, Math.min(state.shownDims, 8));
  traverser.request({ gen: state.generation, z: state.z.slice(), dims });
}

function steer(z) {
  state.z = z.slice();
  syncSliders($("sliders"), state.z);
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
  const pick = (i) => {
    $("t").value = String(i);
    showStep(true);
  };
  for (const [name, reply] of Object.entries(state.paths)) {
    renderStrip($(`strip-${name}`), reply.images, name, pick);
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
  renderSamples(grid, reply.images, (i) => steer(reply.latents[i]));
  grid.dataset.seed = String(reply.seed);
}

// ---------------------------------------------------------------- start-up

function wire() {
  wireSpatial(showError);
  wireVideo(showError);
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
  $("to-sliders").addEventListener("click", () => state.latent && steer(state.latent));
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
