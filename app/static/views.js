// Small DOM builders for the images the service sends back (base64 PNGs) and the slider rows.

export const $ = (id) => document.getElementById(id);

/** An <img> of a base64 PNG, drawn crisp (image-rendering: pixelated). */
export function pngImage(png, alt) {
  const image = new Image();
  image.src = `data:image/png;base64,${png}`;
  image.alt = alt;
  image.className = "px";
  return image;
}

/** Shows a base64 PNG in an existing <img> (its data-alt text once there is one), or clears it. */
export function showPng(image, png) {
  if (png === null) {
    image.removeAttribute("src");
    image.alt = "";
  } else {
    image.src = `data:image/png;base64,${png}`;
    image.alt = image.dataset.alt ?? "";
  }
}

/** One row of the latent sliders: name, range input, value and the dimension's KL. */
export function sliderRow(dim, limit, klText, onInput, onChange) {
  const row = document.createElement("label");
  row.className = "slider";
  const name = document.createElement("span");
  name.className = "dim-name";
  name.textContent = `z${dim}`;
  const input = document.createElement("input");
  input.type = "range";
  input.min = String(-limit);
  input.max = String(limit);
  input.step = "0.01";
  input.dataset.dim = String(dim);
  input.setAttribute("aria-label", `latent dimension ${dim}`);
  const value = document.createElement("output");
  const info = document.createElement("span");
  info.className = "dim-kl";
  info.textContent = klText;
  input.addEventListener("input", () => {
    value.textContent = Number(input.value).toFixed(2);
    onInput(Number(input.value));
  });
  input.addEventListener("change", onChange);
  row.append(name, input, value, info);
  return row;
}

/** Sets each slider (and its shown value) to its dimension of `z`. */
export function syncSliders(container, z) {
  for (const input of container.querySelectorAll("input[type=range]")) {
    const v = z[Number(input.dataset.dim)];
    input.value = String(v);
    input.nextElementSibling.textContent = v.toFixed(2);
  }
}

/** A grid: one row per dimension, one column per value it is swept over. */
export function renderTraversal(grid, images, dims, values) {
  grid.style.setProperty("--columns", String(values.length));
  const cells = [document.createElement("span")];
  for (const v of values) {
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
    values.forEach((v, col) => {
      const image = pngImage(images[row * values.length + col], `z${dim} = ${v}`);
      image.title = image.alt;
      cells.push(image);
    });
  });
  grid.replaceChildren(...cells);
}

/** An interpolation strip; clicking an image calls onPick(step). */
export function renderStrip(strip, images, name, onPick) {
  strip.style.setProperty("--steps", String(images.length));
  strip.replaceChildren(...images.map((png, i) => {
    const image = pngImage(png, `${name} step ${i + 1} of ${images.length}`);
    image.addEventListener("click", () => onPick(i));
    return image;
  }));
}

/** The sample grid; clicking a sample calls onPick(index). */
export function renderSamples(grid, images, onPick) {
  grid.replaceChildren(...images.map((png, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tile";
    button.title = "steer this sample with the latent sliders";
    button.append(pngImage(png, `sample ${i + 1}`));
    button.addEventListener("click", () => onPick(i));
    return button;
  }));
}

/** A grid of code indices [h][w] as a table, each cell shaded by its code (same code, same shade). */
export function renderCodeGrid(table, codes, codebookSize) {
  table.replaceChildren(...codes.map((row) => {
    const tr = document.createElement("tr");
    for (const code of row) {
      const td = document.createElement("td");
      td.textContent = String(code);
      td.style.background = `hsl(${Math.round((360 * code) / Math.max(1, codebookSize))} 60% 85%)`;
      td.style.color = "#111";
      tr.append(td);
    }
    return tr;
  }));
}

/** Makes a drop zone and its file input hand the file dropped or chosen to `onFile`. */
export function fileDropZone(zone, input, onFile) {
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const [file] = event.dataTransfer.files;
    if (file) onFile(file);
  });
  input.addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) onFile(file);
    event.target.value = "";
  });
}
