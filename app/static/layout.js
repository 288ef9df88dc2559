// Which of the page's cards and intros a model gets: the flat-latent cards for a trained VAE,
// the spatial card for an imported image autoencoder, the video card for a video autoencoder.

import { $ } from "./views.js";

const FLAT_CARDS = ["encode-card", "sliders-card", "interp-card", "samples-card", "report-card"];
const TAGLINES = {
  flat: "what a variational autoencoder learned",
  spatial: "what an autoencoder learned",
  video: "what a video autoencoder learned",
};

/** "flat", "spatial" or "video": the page a model kind (a row of GET /models) gets. */
export function pageOf(kind) {
  if (kind?.video) return "video";
  return kind?.spatial ? "spatial" : "flat";
}

/** Shows the cards and the intro of a model's page, hides the others, numbers the steps. */
export function arrangePage(entry) {
  const page = pageOf(entry?.kind);
  document.body.dataset.page = page;
  document.body.dataset.spatial = String(page === "spatial");
  for (const id of FLAT_CARDS) $(id).hidden = page !== "flat";
  $("spatial-card").hidden = page !== "spatial";
  $("video-card").hidden = page !== "video";
  for (const name of Object.keys(TAGLINES)) $(`intro-${name}`).hidden = page !== name;
  $("tagline").textContent = TAGLINES[page];
  numberSteps();
}

/** Numbers the visible sections' steps 1, 2, 3… (each page has its own cards). */
function numberSteps() {
  let step = 0;
  for (const card of document.querySelectorAll("main > section")) {
    const number = card.querySelector("h2 .step");
    if (number && !card.hidden) number.textContent = String(++step);
  }
}
