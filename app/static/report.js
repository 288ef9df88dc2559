// The model's report card: held-out metrics, KL per dimension and the figures of its manifest.

import { klChart } from "./charts.js";

const $ = (id) => document.getElementById(id);
const FIGURES = [
  ["reconstructions", "Held-out images (top) and their reconstructions"],
  ["samples", "Samples from the prior"],
  ["interpolation", "Interpolations between held-out images"],
  ["latent_map", "Latent means of held-out images, first two principal components, coloured by label"],
];

/** Fills the report cards for one model version (an entry of GET /models, with its `name`). */
export function renderReport(entry) {
  const { manifest } = entry;
  renderMetrics(manifest, entry.kind);
  const kl = manifest.metrics?.kl_per_dim ?? [];
  $("kl-block").hidden = kl.length === 0;
  if (kl.length) klChart($("kl-chart"), kl, [...kl.keys()].sort((a, b) => kl[b] - kl[a]));
  const warning = manifest.metrics?.posterior_collapse_warning;
  $("collapse-warning").hidden = !warning;
  $("collapse-warning").textContent = warning ? `⚠ ${warning}` : "";
  renderFigures(entry);
}

function renderMetrics(manifest, kind) {
  const { metrics, training } = manifest;
  const rows = [];
  const nats = (v) => `${v.toFixed(1)} nats`;
  if (metrics && kind.has_iwae_bound) {
    rows.push(["IWAE bound on −log p(x)", `${nats(metrics.iwae_nll)} (K = ${metrics.k})`,
      "lower is better: an estimate of how many nats the model needs per held-out image"]);
    rows.push(["ELBO", nats(metrics.elbo), "the training objective on held-out images; the IWAE bound is tighter"]);
    rows.push(["reconstruction", nats(metrics.reconstruction_nll), "−E log p(x|z): how well images come back"]);
    rows.push(["KL to the prior", nats(metrics.kl), "what the code costs: KL(q(z|x) ‖ N(0, I)), summed over dimensions"]);
    rows.push(["active units", `${metrics.active_units} of ${metrics.kl_per_dim?.length ?? manifest.latent_dim}`,
      "dimensions whose mean moves with the image (Cov > 0.01); the others collapsed to the prior"]);
  } else if (metrics) {
    rows.push(["ELBO", nats(metrics.elbo), "log p(x|z_q) + log p(codes) under the learned prior, on held-out images"]);
    rows.push(["reconstruction", nats(metrics.reconstruction_nll), "−log p(x|z_q): how well images come back"]);
    rows.push(["prior NLL of the codes", nats(metrics.kl), "what the code grid costs under the learned PixelCNN prior"]);
    if (metrics.codes_used !== undefined) {
      rows.push(["codes in use", `${metrics.codes_used} of ${manifest.codebook_size}`, "codebook entries some held-out image uses"]);
    }
  }
  if (metrics) {
    rows.push(["evaluated on", `${metrics.eval_images} held-out images`, ""]);
    const quality = metrics.quality ?? {};
    if (quality.label_accuracy !== undefined) {
      rows.push(["samples of the asked label", percent(quality.label_accuracy),
        `share of samples a classifier (${percent(quality.classifier_accuracy ?? NaN)} on held-out images) puts in the class they were drawn for`]);
    }
    if (quality.frechet_distance !== undefined) {
      rows.push(["Fréchet distance of samples", quality.frechet_distance.toFixed(2),
        "lower is better: samples against held-out images, in the features of a classifier trained on the dataset"]);
    }
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
}

/** When and on what images the figures were drawn: trained versions on held-out images,
 * imported ones (manifest.source.format, no training block) on synthetic probe images, or a
 * synthetic clip for a video model. */
function figuresHint(manifest) {
  const drawn = "Drawn from the published ONNX graphs";
  if (manifest.training) return `${drawn} on held-out images when this version was trained.`;
  const format = manifest.source?.format;
  const probes = manifest.video ? "a synthetic clip" : "synthetic probe images";
  if (format) return `${drawn} on ${probes} when this version was imported (from ${format}).`;
  return `${drawn} when this version was published.`;
}

// The palette of app/evaluation/report.py's latent map, for its figures drawn before it had a legend.
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/** A legend of the label colours, shown under a latent map that has none of its own. */
function mapLegend(manifest, image) {
  const legend = document.createElement("p");
  legend.className = "legend map-legend";
  legend.hidden = true;
  const classes = manifest.classes ?? [];
  const names = classes.length ? classes : [...PALETTE.keys()].map(String);
  legend.append("colour = label:");
  names.forEach((name, i) => {
    const entry = document.createElement("span");
    entry.className = "entry";
    const key = document.createElement("span");
    key.className = "key";
    key.style.background = PALETTE[i % PALETTE.length];
    entry.append(key, ` ${name}`);
    legend.append(" ", entry);
  });
  // Maps drawn with a legend are wider than tall (a legend column); older ones are square.
  const decide = () => { legend.hidden = image.naturalWidth > image.naturalHeight; };
  image.addEventListener("load", decide);
  return legend;
}

function renderFigures(entry) {
  const figures = $("figures");
  figures.replaceChildren();
  const training = Boolean(entry.manifest.training);
  $("figures-hint").textContent = figuresHint(entry.manifest);
  const files = entry.manifest.files ?? {};
  for (const [name, trainedCaption] of FIGURES) {
    const probes = entry.manifest.video ? "Frames of a synthetic panning clip" : "Synthetic probe images";
    const caption = name === "reconstructions" && !training
      ? `${probes} (top) and their reconstructions` : trainedCaption;
    // only figures the version has (its manifest lists them as report/<name>.png): no 404s
    if (!(`report/${name}.png` in files)) continue;
    const figure = document.createElement("figure");
    figure.className = `fig-${name}`;
    const image = new Image();
    image.alt = caption;
    image.loading = "lazy";
    if (name === "latent_map") image.className = "smooth";
    image.src = `/models/${encodeURIComponent(entry.name)}/versions/${entry.version}/report/${name}.png`;
    const text = document.createElement("figcaption");
    text.textContent = caption;
    figure.append(image, text);
    if (name === "latent_map") figure.append(mapLegend(entry.manifest, image));
    figures.append(figure);
  }
  $("figures-empty").hidden = figures.children.length > 0;
}

function percent(share) {
  return Number.isFinite(share) ? `${(share * 100).toFixed(1)} %` : "?";
}

function formatSeconds(seconds) {
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
