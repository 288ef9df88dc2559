// The explorer for a spatial model (kind autoencoder: an imported diffusion VAE). Its latent is
// a grid [C, h, w] and it takes images of any size it allows: drop an image, see the
// reconstruction and every latent channel, interpolate between two images. Same public API.

import { api } from "./api.js";
import { pageOf } from "./layout.js";
import { $, fileDropZone } from "./views.js";

const MAX_SIDE = 256; // images are scaled down to at most this many pixels a side (a fast page)
const STEPS = 8;

const view = { ref: null, manifest: null, images: { a: null, b: null }, generation: 0 };

/** An image file drawn at a size the model takes: a multiple of its downscale factor, at most
 * MAX_SIDE on the longer side; resolves to a base64 PNG (without the data: prefix). */
export async function fitImage(file, manifest, size = null) {
  const bitmap = await createImageBitmap(file);
  const step = manifest.spatial.downscale;
  let width;
  let height;
  if (size) {
    ({ width, height } = size);
  } else {
    const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    const least = Math.max(step, manifest.spatial.min_size);
    width = Math.max(least, Math.floor((bitmap.width * scale) / step) * step);
    height = Math.max(least, Math.floor((bitmap.height * scale) / step) * step);
  }
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0, width, height);
  bitmap.close();
  return { png: canvas.toDataURL("image/png").split(",", 2)[1], width, height };
}

/** One latent channel [h][w] as a grey image, scaled to its own range. */
function channelCanvas(channel, index) {
  const h = channel.length;
  const w = channel[0].length;
  const values = channel.flat();
  const low = Math.min(...values);
  const span = Math.max(...values) - low || 1;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  canvas.className = "px latent-channel";
  canvas.title = `channel ${index}: ${low.toFixed(2)} … ${(low + span).toFixed(2)}`;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(w, h);
  values.forEach((value, i) => {
    const grey = Math.round(((value - low) / span) * 255);
    pixels.data.set([grey, grey, grey, 255], i * 4);
  });
  context.putImageData(pixels, 0, 0);
  return canvas;
}

function setImage(id, png) {
  const image = $(id);
  image.src = `data:image/png;base64,${png}`;
  image.alt = image.dataset.alt ?? "";
}

/** Encodes image A, shows its latent channels, decodes the mean back. */
async function encodeA(onError) {
  const gen = view.generation;
  const { png, width, height } = view.images.a;
  try {
    const encoded = await api("/encode", { model: view.ref, images: [png] });
    if (gen !== view.generation) return;
    const [c, h, w] = encoded.latent_shape;
    const mu = encoded.latents[0].mu;
    $("sp-channels").replaceChildren(...mu.map(channelCanvas));
    $("sp-latent-summary").textContent =
      `${width}×${height} pixels → latent ${c}×${h}×${w} (${c} channels at 1/${view.manifest.spatial.downscale}); ` +
      `diffusion latent = (μ − ${encoded.shift_factor}) × ${encoded.scaling_factor}`;
    const decoded = await api("/decode", { model: view.ref, latents: [mu], format: "png" });
    if (gen !== view.generation) return;
    setImage("sp-recon", decoded.images[0]);
  } catch (error) {
    onError(error);
  }
}

/** lerp and slerp between A and B over the whole latent, as strips of images. */
async function interpolate(onError) {
  if (!view.images.a || !view.images.b) return;
  const gen = view.generation;
  try {
    for (const method of ["lerp", "slerp"]) {
      const reply = await api("/interpolate", {
        model: view.ref, start: { image: view.images.a.png }, end: { image: view.images.b.png },
        steps: STEPS, method,
      });
      if (gen !== view.generation) return;
      const strip = $(`sp-strip-${method}`);
      strip.style.setProperty("--steps", String(reply.images.length));
      strip.replaceChildren(...reply.images.map((png, i) => {
        const image = new Image();
        image.src = `data:image/png;base64,${png}`;
        image.alt = `${method} step ${i + 1} of ${reply.images.length}`;
        image.className = "px";
        return image;
      }));
    }
  } catch (error) {
    onError(error);
  }
}

async function openImage(which, file, onError) {
  try {
    const size = which === "b" && view.images.a ? view.images.a : null;
    view.images[which] = await fitImage(file, view.manifest, size);
    setImage(`sp-${which}`, view.images[which].png);
    if (which === "a") {
      await encodeA(onError);
      if (view.images.b) {
        view.images.b = null; // B follows A's size: drop it again after a new A
        $("sp-b").removeAttribute("src");
      }
    }
    await interpolate(onError);
  } catch (error) {
    onError(new Error(`could not read ${file.name} as an image: ${error.message}`));
  }
}

/** Wires the spatial card once. */
export function wireSpatial(onError) {
  for (const which of ["a", "b"]) {
    const open = (file) => openImage(which, file, onError);
    fileDropZone($(`sp-drop-${which}`), $(`sp-file-${which}`), open);
  }
}

/** Sets up the spatial card for a model (an image autoencoder's), or forgets the last one. The
 * page's layout (which cards show) is layout.js's. */
export function showSpatial(entry) {
  view.generation += 1;
  if (pageOf(entry?.kind) !== "spatial") return;
  view.ref = `${entry.name}:${entry.version}`;
  view.manifest = entry.manifest;
  view.images = { a: null, b: null };
  for (const id of ["sp-channels", "sp-strip-lerp", "sp-strip-slerp"]) $(id).replaceChildren();
  for (const id of ["sp-a", "sp-b", "sp-recon"]) $(id).removeAttribute("src");
  const { spatial: grid, scaling_factor: scaling, shift_factor: shift } = entry.manifest;
  const factors = shift ? `scaling factor ${scaling}, shift factor ${shift}` : `scaling factor ${scaling}, no shift`;
  $("intro-grid").textContent =
    ` with C = ${grid.latent_channels} channels, h and w 1/${grid.downscale} of the image's height and width`;
  $("intro-factors").textContent = `, here ${factors}`;
  $("sp-about").textContent =
    `${entry.manifest.source?.class ?? "autoencoder"}: ${grid.latent_channels} latent channels at ` +
    `1/${grid.downscale} of the image, any size that is a multiple of ${grid.downscale}; ` +
    `${factors}.` + sentence(entry.manifest.prior_note);
}

/** " Note." from a manifest's lower-case clause (its prior note), or "" for none. */
export function sentence(note) {
  const text = (note ?? "").trim();
  if (!text) return "";
  const capital = text[0].toUpperCase() + text.slice(1);
  return ` ${capital}${/[.!?]$/.test(capital) ? "" : "."}`;
}
