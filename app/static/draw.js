// The drawing pad: the visitor draws large (or drops an image), the model gets its own small size.

const INK = "#ffffff";
const PAPER = "#000000";

/** A canvas to draw on with the mouse, a pen or a finger, white ink on black like MNIST. */
export class DrawingPad {
  /**
   * @param {HTMLCanvasElement} canvas the large drawing surface
   * @param {() => void} onChange called while drawing and when a stroke ends
   */
  constructor(canvas, onChange) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d", { willReadFrequently: true });
    this.onChange = onChange;
    this.empty = true;
    this.last = null;
    this.clear();
    canvas.addEventListener("pointerdown", (event) => this.#down(event));
    canvas.addEventListener("pointermove", (event) => this.#move(event));
    canvas.addEventListener("pointerup", (event) => this.#up(event));
    canvas.addEventListener("pointercancel", (event) => this.#up(event));
  }

  /** Wipes the pad. */
  clear() {
    this.context.fillStyle = PAPER;
    this.context.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.empty = true;
  }

  /** Whether nothing has been drawn or loaded since the last clear. */
  isEmpty() {
    return this.empty;
  }

  /** Paints an image file (PNG, JPEG, ...) onto the pad, fitted and, if light, inverted. */
  async load(file) {
    const bitmap = await createImageBitmap(file);
    const { width, height } = this.canvas;
    const scale = Math.min(width / bitmap.width, height / bitmap.height);
    const w = bitmap.width * scale;
    const h = bitmap.height * scale;
    this.clear();
    this.context.imageSmoothingEnabled = scale < 1;
    this.context.drawImage(bitmap, (width - w) / 2, (height - h) / 2, w, h);
    bitmap.close();
    // Models here see ink as bright on dark: a dark-on-light scan is turned around.
    const image = this.context.getImageData(0, 0, width, height);
    if (borderBrightness(image) > 0.5) {
      const data = image.data;
      for (let i = 0; i < data.length; i += 4) {
        data[i] = 255 - data[i];
        data[i + 1] = 255 - data[i + 1];
        data[i + 2] = 255 - data[i + 2];
      }
      this.context.putImageData(image, 0, 0);
    }
    this.empty = false;
    this.onChange();
  }

  /**
   * The pad as the model's input: a Float32Array [C*H*W] in [0, 1] (channel-major).
   *
   * With `frame` (for drawings), the ink is cropped, scaled so its longer side fills 20/28 of
   * the image and centred on its centre of mass, which is how MNIST digits were prepared;
   * without it the whole pad is scaled down. Either way each model pixel is the mean of the
   * pad pixels it covers (a box filter), so thin strokes stay grey rather than vanish.
   */
  toModelInput({ height, width, channels }, frame) {
    const pad = this.context.getImageData(0, 0, this.canvas.width, this.canvas.height);
    const box = frame ? inkWindow(pad, height, width) : wholeWindow(pad, height, width);
    const out = new Float32Array(channels * height * width);
    if (box === null) return out;
    const { left, top, cell } = box;
    const counts = 1 / (cell * cell * 255);
    const plane = height * width;
    const data = pad.data;
    for (let y = 0; y < pad.height; y += 1) {
      const row = Math.floor((y + 0.5 - top) / cell);
      if (row < 0 || row >= height) continue;
      for (let x = 0; x < pad.width; x += 1) {
        const col = Math.floor((x + 0.5 - left) / cell);
        if (col < 0 || col >= width) continue;
        const i = (y * pad.width + x) * 4;
        const at = row * width + col;
        if (channels === 1) {
          out[at] += luminance(data[i], data[i + 1], data[i + 2]) * counts;
        } else {
          for (let c = 0; c < channels; c += 1) out[c * plane + at] += data[i + Math.min(c, 2)] * counts;
        }
      }
    }
    for (let i = 0; i < out.length; i += 1) out[i] = Math.min(1, out[i]);
    return out;
  }

  #point(event) {
    const box = this.canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - box.left) / box.width) * this.canvas.width,
      y: ((event.clientY - box.top) / box.height) * this.canvas.height,
    };
  }

  #down(event) {
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    this.last = this.#point(event);
    this.#stroke(this.last, this.last);
  }

  #move(event) {
    if (this.last === null) return;
    const point = this.#point(event);
    this.#stroke(this.last, point);
    this.last = point;
  }

  #up(event) {
    if (this.last === null) return;
    if (this.canvas.hasPointerCapture(event.pointerId)) {
      this.canvas.releasePointerCapture(event.pointerId);
    }
    this.last = null;
    this.onChange();
  }

  #stroke(from, to) {
    const context = this.context;
    context.strokeStyle = INK;
    context.lineWidth = this.canvas.width / 12;
    context.lineCap = "round";
    context.lineJoin = "round";
    context.beginPath();
    context.moveTo(from.x, from.y);
    context.lineTo(to.x, to.y);
    context.stroke();
    this.empty = false;
    this.onChange();
  }
}

/** Paints a Float32Array [C*H*W] in [0, 1] onto a small canvas of the model's size. */
export function paintInput(canvas, pixels, { height, width, channels }) {
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const plane = height * width;
  for (let i = 0; i < plane; i += 1) {
    for (let c = 0; c < 3; c += 1) {
      image.data[i * 4 + c] = Math.round(pixels[Math.min(c, channels - 1) * plane + i] * 255);
    }
    image.data[i * 4 + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

/** A Float32Array [C*H*W] as the nested lists [C][H][W] that /encode takes as `arrays`. */
export function toNested(pixels, { height, width, channels }) {
  const nested = [];
  for (let c = 0; c < channels; c += 1) {
    const rows = [];
    for (let y = 0; y < height; y += 1) {
      const start = (c * height + y) * width;
      rows.push(Array.from(pixels.subarray(start, start + width), (v) => Math.round(v * 1000) / 1000));
    }
    nested.push(rows);
  }
  return nested;
}

function luminance(r, g, b) {
  return 0.299 * r + 0.587 * g + 0.114 * b;
}

function borderBrightness(image) {
  const { width, height, data } = image;
  let sum = 0;
  let count = 0;
  const add = (x, y) => {
    const i = (y * width + x) * 4;
    sum += luminance(data[i], data[i + 1], data[i + 2]) / 255;
    count += 1;
  };
  for (let x = 0; x < width; x += 1) {
    add(x, 0);
    add(x, height - 1);
  }
  for (let y = 0; y < height; y += 1) {
    add(0, y);
    add(width - 1, y);
  }
  return sum / count;
}

function wholeWindow(pad, height, width) {
  const cell = Math.max(pad.width / width, pad.height / height);
  return { left: (pad.width - cell * width) / 2, top: (pad.height - cell * height) / 2, cell };
}

/** The square of pad pixels that maps onto the model image, framed MNIST-style, or null. */
function inkWindow(pad, height, width) {
  const { data } = pad;
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -1;
  let y1 = -1;
  let mass = 0;
  let mx = 0;
  let my = 0;
  for (let y = 0; y < pad.height; y += 1) {
    for (let x = 0; x < pad.width; x += 1) {
      const i = (y * pad.width + x) * 4;
      const v = luminance(data[i], data[i + 1], data[i + 2]);
      if (v < 16) continue;
      x0 = Math.min(x0, x);
      x1 = Math.max(x1, x);
      y0 = Math.min(y0, y);
      y1 = Math.max(y1, y);
      mass += v;
      mx += v * (x + 0.5);
      my += v * (y + 0.5);
    }
  }
  if (x1 < 0) return null;
  const size = Math.min(height, width);
  const box = Math.max(1, Math.round((size * 20) / 28));
  const cell = Math.max(x1 - x0 + 1, y1 - y0 + 1) / box;
  return { left: mx / mass - (cell * width) / 2, top: my / mass - (cell * height) / 2, cell };
}
