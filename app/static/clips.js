// The clips the video card encodes: made in the browser (shapes moving over a gradient, drawn on
// a canvas frame by frame), or read from a video file the visitor opens. Either way a clip is
// `count` RGBA frames (ImageData) of size × size pixels, sent to /encode as .npy uint8 [F,H,W,3].

import { toNpy } from "./npy.js";

const SEEK_TIMEOUT_MS = 10_000;

/** A small seeded generator of numbers in [0, 1) (mulberry32): the same seed, the same clip. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function canvasOf(size) {
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  return canvas;
}

/** Clip A's kind: a ball bouncing across a vertical gradient. */
function ballFrame(context, size, p, look) {
  const sky = context.createLinearGradient(0, 0, 0, size);
  sky.addColorStop(0, `hsl(${look.hue} 55% 25%)`);
  sky.addColorStop(1, `hsl(${look.hue + 40} 60% 65%)`);
  context.fillStyle = sky;
  context.fillRect(0, 0, size, size);
  const x = size * (look.flip ? 0.82 - 0.64 * p : 0.18 + 0.64 * p);
  const y = size * (0.7 - 0.45 * Math.sin(Math.PI * p));
  context.fillStyle = `hsl(${look.hue + 180} 85% 55%)`;
  context.beginPath();
  context.arc(x, y, size * 0.16, 0, 2 * Math.PI);
  context.fill();
}

/** Clip B's kind: a bar turning over a horizontal gradient, a disc growing in a corner. */
function barFrame(context, size, p, look) {
  const ground = context.createLinearGradient(0, 0, size, 0);
  ground.addColorStop(0, `hsl(${look.hue} 50% 30%)`);
  ground.addColorStop(1, `hsl(${look.hue - 50} 45% 55%)`);
  context.fillStyle = ground;
  context.fillRect(0, 0, size, size);
  context.fillStyle = `hsl(${look.hue + 150} 80% 60%)`;
  context.beginPath();
  context.arc(size * 0.78, size * 0.22, size * (0.05 + 0.15 * p), 0, 2 * Math.PI);
  context.fill();
  context.save();
  context.translate(size / 2, size / 2);
  context.rotate((look.flip ? -1 : 1) * Math.PI * p);
  context.fillStyle = "hsl(50 90% 92%)";
  context.fillRect(-size * 0.36, -size * 0.08, size * 0.72, size * 0.16);
  context.restore();
}

/** Clip "a" (a bouncing ball) or "b" (a turning bar) of `count` frames, its colours and
 * direction from `seed`. */
export function makeClip(which, seed, size, count) {
  const next = random(seed);
  const look = { hue: Math.floor(next() * 360), flip: next() < 0.5 };
  const draw = which === "a" ? ballFrame : barFrame;
  const canvas = canvasOf(size);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const frames = [];
  for (let i = 0; i < count; i += 1) {
    draw(context, size, count > 1 ? i / (count - 1) : 0, look);
    frames.push(context.getImageData(0, 0, size, size));
  }
  return { size, frames };
}

/** Resolves once `target` fires `event`; rejects on its `error` or after a while. */
function once(target, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(reject, new Error(`no ${event} from the video`)), SEEK_TIMEOUT_MS);
    const onEvent = () => done(resolve);
    const onError = () => done(reject, new Error(target.error?.message || "the browser cannot play it"));
    function done(settle, value) {
      clearTimeout(timer);
      target.removeEventListener(event, onEvent);
      target.removeEventListener("error", onError);
      settle(value);
    }
    target.addEventListener(event, onEvent);
    target.addEventListener("error", onError);
  });
}

/** A clip from a video file the browser can play: `count` frames from its start at `fps`
 * (spread over the whole file when it is shorter), its centre square scaled to size × size. */
export async function clipFromFile(file, size, count, fps) {
  const url = URL.createObjectURL(file);
  const video = document.createElement("video");
  video.muted = true;
  video.preload = "auto";
  try {
    const loaded = once(video, "loadeddata");
    video.src = url;
    await loaded;
    const duration = Number.isFinite(video.duration) && video.duration > 0 ? video.duration : count / fps;
    const step = Math.min(1 / fps, duration / count);
    const side = Math.min(video.videoWidth, video.videoHeight);
    const [sx, sy] = [(video.videoWidth - side) / 2, (video.videoHeight - side) / 2];
    const canvas = canvasOf(size);
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const frames = [];
    for (let i = 0; i < count; i += 1) {
      const seeked = once(video, "seeked");
      video.currentTime = Math.min(i * step, Math.max(0, duration - 1e-3));
      await seeked;
      context.drawImage(video, sx, sy, side, side, 0, 0, size, size);
      frames.push(context.getImageData(0, 0, size, size));
    }
    return { size, frames };
  } finally {
    video.removeAttribute("src");
    video.load();
    URL.revokeObjectURL(url);
  }
}

/** A clip's frames as /encode takes them: .npy uint8 [F, H, W, 3]. */
export function clipNpy({ size, frames }) {
  const rgb = new Uint8Array(frames.length * size * size * 3);
  frames.forEach((frame, f) => {
    const rgba = frame.data;
    const base = f * size * size * 3;
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
      rgb[base + j] = rgba[i];
      rgb[base + j + 1] = rgba[i + 1];
      rgb[base + j + 2] = rgba[i + 2];
    }
  });
  return toNpy(rgb, [frames.length, size, size, 3]);
}

/** Plays a clip's frames on a canvas at `fps`, over and over, until `stop()`. */
export function loopClip(canvas, { size, frames }, fps) {
  canvas.width = size;
  canvas.height = size;
  const context = canvas.getContext("2d");
  let i = 0;
  const show = () => {
    context.putImageData(frames[i], 0, 0);
    i = (i + 1) % frames.length;
  };
  show();
  const timer = setInterval(show, 1000 / fps);
  return { stop: () => clearInterval(timer) };
}
