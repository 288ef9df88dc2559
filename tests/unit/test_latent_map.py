"""The report's 2-D latent map reads on its own: a framed plot with ticks and axis names, and a
legend giving each label's colour."""

from __future__ import annotations

import numpy as np

from app.evaluation.report import PALETTE, MapLayout, latent_map


def clustered_means(labels: np.ndarray, dim: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((int(labels.max()) + 1, dim)) * 3
    return centres[labels] + rng.standard_normal((len(labels), dim))


def test_the_map_has_a_legend_of_its_labels_colours() -> None:
    labels = np.repeat(np.arange(3), 50)
    image = np.asarray(latent_map(clustered_means(labels), labels, size=256))
    layout = MapLayout.for_size(256)
    assert image.shape[:2] == (layout.height, layout.width)
    for row, label in enumerate(range(3)):
        left, top, right, bottom = layout.swatch_box(row)
        swatch = image[top : bottom + 1, left : right + 1].reshape(-1, 3)
        assert (swatch == PALETTE[label]).all(), f"legend row {row}"
        # its name is written beside it: dark pixels right of the swatch
        assert image[top : bottom + 1, right + 4 : right + 30].min() < 100
    left, top, right, bottom = layout.swatch_box(3)
    assert (image[top : bottom + 1, left : right + 1] == 255).all()  # three labels, three rows


def test_the_map_has_axes_with_ticks_and_names() -> None:
    labels = np.repeat(np.arange(2), 40)
    image = np.asarray(latent_map(clustered_means(labels), labels, size=256)).min(axis=2)
    left, top, right, bottom = MapLayout.for_size(256).plot
    assert (image[top : bottom + 1, left] == 0).all()  # the y axis
    assert (image[bottom, left : right + 1] == 0).all()  # the x axis
    assert image[bottom + 5 : bottom + 40, left:right].min() < 100  # tick values, "PC 1"
    assert image[top:bottom, : left - 4].min() < 100  # tick values, "PC 2"


def test_an_unlabelled_map_says_so_instead_of_a_legend() -> None:
    mu = clustered_means(np.zeros(60, dtype=np.int64))
    image = np.asarray(latent_map(mu, None, size=256))
    layout = MapLayout.for_size(256)
    left, top, right, bottom = layout.swatch_box(0)
    assert (image[top : bottom + 1, left : right + 1] == 255).all()  # no colour swatch
    legend_left, legend_top = layout.legend[:2]
    note = image[legend_top - 8 : legend_top + 8, legend_left : legend_left + 60]
    assert note.min() < 100  # "no labels" is written there
    labelled = np.asarray(latent_map(mu, np.zeros(60, dtype=np.int64), size=256))
    heading = labelled[legend_top - 8 : legend_top + 8, legend_left : legend_left + 60]
    assert not np.array_equal(note, heading)  # not the labelled map's "label" heading
