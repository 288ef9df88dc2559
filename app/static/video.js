// The explorer for a video model (kind video_autoencoder: an imported diffusers video VAE). Its
// latent is a clip [C, T, h, w]. Two clips, made in the browser or opened from video files, go
// to /encode as .npy frames; a slider picks a point between their latents (lerp, or slerp about
// the model's latent mean); /decode turns that point into an mp4 the page plays. Same public API
// as every other card.

import { apiBytes, latestOnly } from "./api.js";
import { clipFromFile, clipNpy, loopClip, makeClip } from "./clips.js";
import { fromNpy, toNpy } from "./npy.js";
import { sentence } from "./spatial.js";
import { $, fileDropZone } from "./views.js";

const NPY = "application/x-npy";
const SIDES = [32, 64, 128]; // clip sizes offered, rounded up to what the model takes
const DEFAULT_SIDE = 64;
const LATENT_FRAMES = [2, 3, 4, 5]; // T offered; a clip has (T - 1) * k + 1 frames
const DEFAULT_LATENT_FRAMES = 3;
const FIRST_SEEDS = { a: 1, b: 2 };

const view = {
  ref: null,
  manifest: null,
  generation: 0, // bumped on a new model, size or length: answers for older clips are dropped
  latents: { a: null, b: null }, // { values: Float32Array, shape: [C, T, h, w] }
  tokens: { a: 0, b: 0 }, // bumped on each new clip A or B: an older clip's latent is dropped
  loops: { a: null, b: null }, // the source clips playing on their canvases
  seed: 0,
  url: null, // the object URL the player plays
  running: 0, // requests in flight (the card looks busy while any runs)
};

let reportError = () => {};

// ---------------------------------------------------------------- sizes and frames

function video() {
  return view.manifest.video;
}

/** Clip sides the model takes: multiples of its downscale, at least its min_size. */
function sides() {
  const { downscale, min_size: least } = view.manifest.spatial;
  const fit = (side) => Math.max(Math.ceil(least / downscale) * downscale, Math.ceil(side / downscale) * downscale);
  return [...new Set(SIDES.map(fit))];
}

function framesOf(latentFrames) {
  return (latentFrames - 1) * video().temporal_downscale + 1;
}

function chosenSide() {
  return Number($("vid-size").value);
}

function chosenFrames() {
  return framesOf(Number($("vid-frames").value));
}

function fillChoices() {
  const sizes = sides();
  const side = sizes.find((s) => s >= DEFAULT_SIDE) ?? sizes[sizes.length - 1];
  $("vid-size").replaceChildren(...sizes.map((s) => new Option(`${s}×${s}`, String(s), false, s === side)));
  $("vid-frames").replaceChildren(...LATENT_FRAMES.map((t) =>
    new Option(`${framesOf(t)} (T = ${t})`, String(t), false, t === DEFAULT_LATENT_FRAMES)));
}

// ---------------------------------------------------------------- encode and decode

/** A clip's latent means [C, T, h, w] from /encode (frames as .npy uint8 [F, H, W, 3]). */
async function encodeClip(clip) {
  const reply = await apiBytes("/encode", { model: view.ref }, clipNpy(clip), NPY, NPY);
  const { values, shape } = fromNpy(await reply.arrayBuffer());
  return { values, shape: shape.length === 5 ? shape.slice(1) : shape };
}

/** The point `t` of the way from A's latent to B's: lerp, or slerp of the latents measured from
 * the model's per-channel mean in units of its std (where a diffusion model's latents live). */
export function between(a, b, t, method, mean = [], std = []) {
  const [channels, ...rest] = a.shape;
  const cell = rest.reduce((x, y) => x * y, 1);
  const out = new Float32Array(a.values.length);
  if (method === "lerp") {
    for (let i = 0; i < out.length; i += 1) out[i] = a.values[i] + t * (b.values[i] - a.values[i]);
    return out;
  }
  const centre = (i) => mean[Math.floor(i / cell) % channels] ?? 0;
  const unit = (i) => std[Math.floor(i / cell) % channels] ?? 1;
  let [dot, na, nb] = [0, 0, 0];
  const u = new Float32Array(out.length);
  const v = new Float32Array(out.length);
  for (let i = 0; i < out.length; i += 1) {
    u[i] = (a.values[i] - centre(i)) / unit(i);
    v[i] = (b.values[i] - centre(i)) / unit(i);
    dot += u[i] * v[i];
    na += u[i] * u[i];
    nb += v[i] * v[i];
  }
  const omega = Math.acos(Math.min(1, Math.max(-1, dot / (Math.sqrt(na * nb) || 1))));
  const [wa, wb] = omega < 1e-4
    ? [1 - t, t]
    : [Math.sin((1 - t) * omega) / Math.sin(omega), Math.sin(t * omega) / Math.sin(omega)];
  for (let i = 0; i < out.length; i += 1) out[i] = (wa * u[i] + wb * v[i]) * unit(i) + centre(i);
  return out;
}

async function decodeAt({ gen, t, method }) {
  const { a, b } = view.latents;
  const values = between(a, b, t, method, view.manifest.latents_mean, view.manifest.latents_std);
  const started = performance.now();
  const reply = await apiBytes("/decode", { model: view.ref, format: "mp4" }, toNpy(values, a.shape), NPY, "video/mp4");
  const blob = await reply.blob();
  return {
    gen, t, method, blob,
    frames: reply.headers.get("x-vae-frames"),
    fps: reply.headers.get("x-vae-fps"),
    seconds: (performance.now() - started) / 1000,
  };
}

const decoder = latestOnly(
  (request) => busy(decodeAt(request)),
  { delayMs: 120, maxWaitMs: 600 },
  showDecoded,
  (error) => reportError(error),
);

/** Marks the card busy while `promise` (or another one) runs. */
async function busy(promise) {
  const card = $("video-card");
  view.running += 1;
  card.classList.add("busy");
  try {
    return await promise;
  } finally {
    view.running -= 1;
    if (view.running === 0) card.classList.remove("busy");
  }
}

function showDecoded({ gen, t, method, blob, frames, fps, seconds }) {
  if (gen !== view.generation) return;
  const player = $("vid-player");
  if (view.url) URL.revokeObjectURL(view.url);
  view.url = URL.createObjectURL(blob);
  player.src = view.url;
  player.dataset.t = String(t);
  player.play().catch(() => {}); // muted, so allowed; a browser that refuses still shows controls
  const which = t === 0 ? "A's reconstruction" : t === 1 ? "B's reconstruction" : `${method}(A, B, ${t.toFixed(2)})`;
  $("vid-caption").textContent = `decode: ${which}`;
  $("vid-decoded").textContent =
    `${frames ?? "?"} frames at ${fps ?? "?"} fps · ${(blob.size / 1024).toFixed(1)} kB of mp4 · ${seconds.toFixed(2)} s`;
}

/** Asks for the clip at the slider's point, once both latents are there. */
function requestDecode() {
  const slider = $("vid-t");
  const t = Number(slider.value) / Number(slider.max);
  const method = $("vid-method").value;
  $("vid-t-value").textContent = `t = ${t.toFixed(2)}`;
  if (!view.latents.a || !view.latents.b) return;
  decoder.request({ gen: view.generation, t, method });
}

// ---------------------------------------------------------------- the two clips

async function setClip(which, clip, caption) {
  const gen = view.generation;
  const token = ++view.tokens[which];
  view.loops[which]?.stop();
  view.latents[which] = null;
  view.loops[which] = loopClip($(`vid-${which}`), clip, video().fps);
  $(`vid-${which}-caption`).textContent = caption;
  try {
    const latent = await busy(encodeClip(clip));
    if (gen !== view.generation || token !== view.tokens[which]) return;
    view.latents[which] = latent;
    if (which === "a") describeLatent(clip, latent);
    requestDecode();
  } catch (error) {
    if (gen === view.generation) reportError(error);
  }
}

function describeLatent(clip, latent) {
  const [c, t, h, w] = latent.shape;
  $("vid-summary").textContent =
    `${clip.frames.length} frames of ${clip.size}×${clip.size} → latent ${c}×${t}×${h}×${w} ` +
    `(C×T×h×w): the first frame alone, then one latent frame every ${video().temporal_downscale} frames, ` +
    `${h}×${w} cells of ${view.manifest.spatial.downscale}×${view.manifest.spatial.downscale} pixels`;
}

/** New made-up clips A and B at the chosen size and length (new colours after the first). */
function makeClips() {
  view.generation += 1;
  decoder.cancel();
  const [side, count] = [chosenSide(), chosenFrames()];
  for (const which of ["a", "b"]) {
    const seed = FIRST_SEEDS[which] + 2 * view.seed;
    const kind = which === "a" ? "a bouncing ball" : "a turning bar";
    setClip(which, makeClip(which, seed, side, count), `${kind}, made here (seed ${seed})`);
  }
  view.seed += 1;
}

async function openClip(which, file) {
  try {
    const clip = await clipFromFile(file, chosenSide(), chosenFrames(), video().fps);
    await setClip(which, clip, `${file.name}, its first ${clip.frames.length} frames`);
  } catch (error) {
    reportError(new Error(`could not read ${file.name} as a video: ${error.message}`));
  }
}

// ---------------------------------------------------------------- the card

/** Wires the video card once. */
export function wireVideo(onError) {
  reportError = onError;
  $("vid-t").addEventListener("input", requestDecode);
  $("vid-method").addEventListener("change", requestDecode);
  $("vid-new").addEventListener("click", makeClips);
  for (const id of ["vid-size", "vid-frames"]) {
    $(id).addEventListener("change", () => {
      view.seed = 0;
      makeClips();
    });
  }
  for (const which of ["a", "b"]) {
    fileDropZone($(`vid-drop-${which}`), $(`vid-file-${which}`), (file) => openClip(which, file));
  }
}

function stop() {
  view.generation += 1;
  decoder.cancel();
  for (const which of ["a", "b"]) view.loops[which]?.stop();
  view.loops = { a: null, b: null };
  view.latents = { a: null, b: null };
  const player = $("vid-player");
  player.removeAttribute("src");
  player.load();
  if (view.url) URL.revokeObjectURL(view.url);
  view.url = null;
}

/** The status line's words for a video model. */
export function videoStatus(ref, manifest) {
  const { latent_channels: c, downscale } = manifest.spatial;
  const { temporal_downscale: k, fps } = manifest.video;
  return `${ref} · VIDEO AUTOENCODER · ${c}×T×h/${downscale}×w/${downscale} latent · ${k}× in time · ${fps} fps`;
}

/** Sets up the video card for a model (a video one: makes and encodes two clips), or stops it. */
export function showVideo(entry) {
  stop();
  if (!entry?.kind?.video) return;
  view.ref = `${entry.name}:${entry.version}`;
  view.manifest = entry.manifest;
  view.seed = 0;
  const { spatial: grid, video: time, scaling_factor: scaling, shift_factor: shift } = entry.manifest;
  const perChannel = (entry.manifest.latents_mean ?? []).length > 0;
  const factors = [
    perChannel ? "per-channel mean and std" : "no per-channel mean and std",
    `scaling factor ${scaling}`,
    shift ? `shift factor ${shift}` : "no shift",
  ].join(", ");
  $("intro-video-grid").textContent =
    ` with C = ${grid.latent_channels} channels, h and w 1/${grid.downscale} of the frames' height and width`;
  $("intro-video-k").textContent = String(time.temporal_downscale);
  $("intro-video-factors").textContent = `, here ${factors}`;
  $("vid-about").textContent =
    `${entry.manifest.source?.class ?? "video autoencoder"}: ${grid.latent_channels} latent channels at ` +
    `1/${grid.downscale} of the frame and 1/${time.temporal_downscale} of the frames (after the first); ` +
    `${factors}; its clips play at ${time.fps} fps.` + sentence(entry.manifest.prior_note);
  $("vid-t").value = "0";
  $("vid-summary").textContent = "Encoding clip A…";
  $("vid-caption").textContent = "decode";
  $("vid-decoded").textContent = "";
  fillChoices();
  makeClips();
}
