"""Loading a flat version's graphs (vae, cvae, hvae, vqvae) on the engine and precision chosen
for each (`engine_choice`), with the gates of `quality`: the IWAE bound, or for a VQ-VAE the
images its code grids decode to; and the trial: batches of the sizes traffic gives the
micro-batcher (an engine that compiles each batch size pays for it there, as it would serving).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from app.arrays import FloatArray
from app.config import Settings
from app.repository.manifest import Manifest
from app.runtime.choice import Gate, GateResult, TrialRun
from app.runtime.engines import EngineSpec, open_graph
from app.runtime.graph import Graph
from app.serving import quality
from app.serving.engine_choice import (
    FlatGate,
    Opening,
    Race,
    engine_options,
    engine_specs,
    no_gate,
    passed_psnr,
    passed_shift,
    pick,
    remembered,
)
from app.serving.packing import PackedGraph
from app.serving.vq import CODEBOOK_FILE, codes_to_latents

Labels = NDArray[np.int64] | None


def traffic_sizes(max_rows: int) -> list[int]:
    """Batch sizes as the micro-batcher makes them under mixed traffic: full batches and
    partial ones of several sizes (more sizes than OpenVINO keeps compiled by default)."""
    return [max_rows, 1, min(7, max_rows), max(1, max_rows // 2), min(3, max_rows), max_rows]


def flat_trial(
    row_shape: tuple[int, ...], conditional: bool, max_rows: int, classes: int
) -> TrialRun:
    """Seconds for a round of traffic-sized batches through a graph of rows `row_shape`, the
    best of three, candidates racing (`Race`): these graphs take milliseconds a round."""
    race = Race(rounds=3)

    def trial(graph: Graph) -> float:
        shaped = PackedGraph(graph, row_shape, conditional)
        batches = [
            shaped.pack(
                np.zeros((rows, *row_shape), np.float32),
                np.arange(rows) % max(1, classes) if conditional else None,
            )
            for rows in traffic_sizes(max_rows)
        ]
        return race.time([partial(shaped.run, batch) for batch in batches])

    return trial


@dataclass
class BoundJudge:
    """The IWAE gate of a vae, cvae or hvae: check images are the fp32 decoder's means for
    seeded prior draws (cycling through the classes), and the bound fp32 gives them. An hvae's
    is the top layer's bound with the lower layer at its mean (the zero noise the API decodes
    with): not its full bound, the same measure for the candidate and fp32."""

    manifest: Manifest
    encoder: PackedGraph
    decoder: PackedGraph

    def __post_init__(self) -> None:
        rows, classes = quality.CHECK_ROWS, max(1, len(self.manifest.classes))
        self.labels: Labels = np.arange(rows) % classes if self.manifest.conditional else None
        width = self.manifest.latent_dim + self.manifest.noise_dim
        drawn = quality.prior_draws(rows, width)
        self.images = self.decoder.run(self.decoder.pack(drawn, self.labels))["x_mean"]
        self.reference = self.bound(self.encoder, self.decoder)

    def bound(self, encoder: PackedGraph, decoder: PackedGraph) -> float:
        """The IWAE bound of the check images through these graphs."""
        noise = self.manifest.noise_dim

        def decode(z: FloatArray, labels: Labels) -> dict[str, FloatArray]:
            if noise:
                z = np.concatenate([z, np.zeros((len(z), noise), np.float32)], axis=1)
            return decoder.run(decoder.pack(z, labels))

        model = quality.FlatModel(
            lambda x, labels: encoder.run(encoder.pack(x, labels)), decode, self.manifest.likelihood
        )
        return quality.iwae_bound(model, self.images, self.labels)

    def decoder_gate(self, candidate: Graph, reference: Graph) -> GateResult:
        """The bound's shift with the candidate decoder (and the fp32 encoder)."""
        decoder = PackedGraph(candidate, self.decoder.row_shape, self.decoder.conditional)
        return passed_shift(abs(self.bound(self.encoder, decoder) - self.reference))

    def encoder_gate(self, chosen_decoder: PackedGraph) -> Gate:
        """The bound's shift with a candidate encoder and the decoder chosen, against fp32's."""

        def gate(candidate: Graph, reference: Graph) -> GateResult:
            encoder = PackedGraph(candidate, self.encoder.row_shape, self.encoder.conditional)
            return passed_shift(abs(self.bound(encoder, chosen_decoder) - self.reference))

        return gate


@dataclass
class CodesJudge:
    """A VQ-VAE's gate: images decoded from seeded code grids (uniform over the codebook); a
    decoder by the PSNR of its images against fp32's, an encoder by the PSNR of fp32's
    decoding of its codes for those images against fp32's decoding of fp32's codes."""

    manifest: Manifest
    encoder: PackedGraph
    decoder: PackedGraph
    codebook: FloatArray

    def __post_init__(self) -> None:
        rng = np.random.default_rng(quality.SEED)
        grid = (quality.CHECK_ROWS, *self.manifest.grid)
        self.latents = codes_to_latents(self.codebook, rng.integers(0, len(self.codebook), grid))
        self.images = self.decoder.run(self.latents)["x_mean"]
        self.reconstructed = self.reconstruct(self.encoder)

    def reconstruct(self, encoder: PackedGraph) -> FloatArray:
        """fp32's decoding of the codes `encoder` picks for the check images."""
        codes = np.rint(encoder.run(self.images)["codes"]).astype(np.int64)
        return self.decoder.run(codes_to_latents(self.codebook, codes))["x_mean"]

    def decoder_gate(self, candidate: Graph, reference: Graph) -> GateResult:
        """PSNR of the candidate's images of the code grids against fp32's."""
        return passed_psnr(quality.psnr(self.images, candidate.run(self.latents)["x_mean"]))

    def encoder_gate(self, chosen_decoder: PackedGraph) -> Gate:
        """PSNR of fp32's decoding of the candidate's codes against that of fp32's codes."""

        def gate(candidate: Graph, reference: Graph) -> GateResult:
            encoder = PackedGraph(candidate, self.encoder.row_shape, False)
            return passed_psnr(quality.psnr(self.reconstructed, self.reconstruct(encoder)))

        return gate


def _judge(
    manifest: Manifest, directory: Path, encoder: PackedGraph, decoder: PackedGraph, kind: FlatGate
) -> BoundJudge | CodesJudge:
    if kind == "codes":
        codebook = np.load(directory / CODEBOOK_FILE).astype(np.float32)
        return CodesJudge(manifest, encoder, decoder, codebook)
    return BoundJudge(manifest, encoder, decoder)


def load_flat_graphs(
    manifest: Manifest, directory: Path, settings: Settings, kind: FlatGate
) -> tuple[PackedGraph, PackedGraph]:
    """The encoder and decoder of a flat version, each on the engine chosen for it: the decoder
    first, then the encoder gated with the decoder chosen."""
    specs, options = engine_specs(settings), engine_options(settings)
    conditional, rows = manifest.conditional, settings.max_batch_size
    shapes = {
        "encoder": manifest.image.shape,
        "decoder": (manifest.latent_dim + manifest.noise_dim,),
    }
    opens = {
        which: Opening(directory / f"{which}.onnx", getattr(manifest.dtypes, which), options)
        for which in shapes
    }
    again = all(remembered(opening, specs) for opening in opens.values())
    references = {
        which: None if again else opening.open_reference(specs) for which, opening in opens.items()
    }
    judge = None
    if references["encoder"] is not None and references["decoder"] is not None:
        packed = {
            which: PackedGraph(graph, shapes[which], conditional)
            for which, graph in references.items()
            if graph is not None
        }
        judge = _judge(manifest, directory, packed["encoder"], packed["decoder"], kind)
    trial = {
        which: flat_trial(shape, conditional, rows, len(manifest.classes))
        for which, shape in shapes.items()
    }
    graph, choice = pick(
        opens["decoder"], specs, judge.decoder_gate if judge else no_gate, trial["decoder"]
    )
    decoder = PackedGraph(graph, shapes["decoder"], conditional, choice)
    gate = judge.encoder_gate(decoder) if judge else no_gate
    graph, choice = pick(opens["encoder"], specs, gate, trial["encoder"])
    return PackedGraph(graph, shapes["encoder"], conditional, choice), decoder


def prior_graph(path: Path, settings: Settings) -> Graph:
    """A VQ-VAE's PixelCNN prior on fp32: its input grows a row at a time while sampling, so an
    engine that compiles each shape would compile at every row; ONNX Runtime unless the settings
    name OpenVINO."""
    engine = "openvino" if settings.engine == "openvino" else "onnxruntime"
    return open_graph(path, EngineSpec(engine, "fp32", "cpu"), engine_options(settings))
