"""Loading a spatial version's graphs: each on the engine and precision chosen for it (float16
graphs behind a float32 face), gated by PSNR against fp32 on the version's own check images and
timed on one image of 16 latent cells a side (128 pixels at 8x); whether its requests are
batched, and the batcher's cap on rows by image pixels; the fp32 ("exact") graph, opened on
demand, of each graph chosen at a lower precision."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from app.arrays import FloatArray
from app.config import Settings, SpatialBatching
from app.repository.manifest import Manifest
from app.runtime.choice import EngineChoice, Gate, GateResult, TrialRun
from app.runtime.engines import EngineSpec
from app.runtime.graph import Graph
from app.serving import quality
from app.serving.batcher import Runner
from app.serving.engine_choice import (
    Opening,
    Race,
    engine_options,
    engine_specs,
    exact_spec,
    no_gate,
    passed_psnr,
    pick,
    remembered,
)
from app.serving.loaded import ExactRunner
from app.serving.packing import PackedGraph
from app.serving.spatial_io import to_model_range, to_unit_range

CHECK_IMAGES = 2
# Sizes in latent cells a side: what a model computes on (its attention grows with their
# square), whatever its downscale. An SD-style model (8x) is checked and timed at 128 pixels:
# one size, so OpenVINO compiles one shape a candidate for both; 256 chose the same engines for
# kl-small, kl-sd and TAESD (bf16 4-10x ONNX Runtime either way) at 2.5x the load time.
CHECK_CELLS = 16
TRIAL_CELLS = 16


def check_size(manifest: Manifest, cells: int) -> tuple[int, int]:
    """The image size a gate or trial runs at: `cells` latent cells a side (at least the
    smallest size the model takes), or the model's own size when it takes only that."""
    spec = manifest.spatial
    if spec is None or not spec.free_size:
        return manifest.image.height, manifest.image.width
    step = spec.downscale
    side = max(-(-spec.min_size // step) * step, cells * step)
    return side, side


def latent_mean(outputs: dict[str, FloatArray], channels: int) -> FloatArray:
    """The latent mean among an encoder's outputs (`mu`, or the first half of moments)."""
    first = outputs["mu"] if "mu" in outputs else next(iter(outputs.values()))
    return first[:, :channels] if first.shape[1] == 2 * channels else first


def image_of(outputs: dict[str, FloatArray]) -> FloatArray:
    """A decoder's image: its first output."""
    return next(iter(outputs.values()))


class Warmed:
    """Graphs that ran already, by identity, held weakly (a candidate that lost is freed)."""

    def __init__(self) -> None:
        self._refs: list[weakref.ref[Graph]] = []

    def add(self, graph: Graph) -> None:
        """Notes `graph` as warmed."""
        if graph not in self:
            self._refs.append(weakref.ref(graph))

    def __contains__(self, graph: object) -> bool:
        return any(ref() is graph for ref in self._refs)


@dataclass
class ImageJudge:
    """The PSNR gates of a spatial version on its check images (seeded gradients and edges, 16
    latent cells a side): latents are the fp32 encoder's; a decoder is judged by its images of them
    against fp32's, an encoder by fp32's decoding of its latents against fp32's decoding of
    fp32's latents."""

    manifest: Manifest
    encoder: Graph
    decoder: Graph

    def __post_init__(self) -> None:
        self.warmed = Warmed()
        height, width = check_size(self.manifest, CHECK_CELLS)
        channels = self.manifest.image.channels
        images = quality.check_images(CHECK_IMAGES, channels, height, width)
        self.images = to_model_range(self.manifest, images)
        self.latents = self.encode(self.encoder)
        self.reference = self.decode(self.decoder, self.latents)

    def encode(self, graph: Graph) -> FloatArray:
        """The latent means `graph` gives the check images."""
        return latent_mean(self.run(graph, self.images), self.manifest.latent_dim)

    def decode(self, graph: Graph, latents: FloatArray) -> FloatArray:
        """Images in [0,1] that `graph` decodes latents to."""
        return to_unit_range(self.manifest, image_of(self.run(graph, latents)))

    def run(self, graph: Graph, rows: FloatArray) -> dict[str, FloatArray]:
        """The graph's outputs for rows run one at a time, as serving runs them (and the trial:
        one shape for an engine to compile); the graph is noted as warmed."""
        self.warmed.add(graph)
        outputs = [graph.run(rows[i : i + 1]) for i in range(len(rows))]
        return {name: np.concatenate([out[name] for out in outputs]) for name in outputs[0]}

    def decoder_gate(self, candidate: Graph, reference: Graph) -> GateResult:
        """PSNR of the candidate decoder's images against fp32's."""
        return passed_psnr(quality.psnr(self.reference, self.decode(candidate, self.latents)))

    def encoder_gate(self) -> Gate:
        """PSNR of fp32's decoding of a candidate encoder's latents against fp32's own."""

        def gate(candidate: Graph, reference: Graph) -> GateResult:
            decoded = self.decode(self.decoder, self.encode(candidate))
            return passed_psnr(quality.psnr(self.reference, decoded))

        return gate


def spatial_trial(inputs: FloatArray, warmed: Warmed | None = None) -> TrialRun:
    """Seconds for one call on `inputs`, after an untimed one that compiles the shape unless
    the graph is among those `warmed` (the gate ran it at this shape already). One timed call: an SD-size
    decoder's call takes a second on a CPU, and a load runs it for every candidate."""
    race = Race()

    def trial(graph: Graph) -> float:
        return race.time([lambda: graph.run(inputs)], warm_up=warmed is None or graph not in warmed)

    return trial


CPU_PROVIDER = "CPUExecutionProvider"


def batches_pay(setting: SpatialBatching, provider: str) -> bool:
    """Whether a spatial model's requests are batched (`VAE_SPATIAL_BATCHING`): `on`, `off`, or
    `auto`, on every provider but the CPU's (ONNX Runtime's or OpenVINO's `openvino:CPU`). On a CPU, ONNX Runtime runs these convolutional
    decoders no faster per image in a batch than one by one (bench/RESULTS.md: its best batch is
    one image for TAESD and a small AutoencoderKL at 256 and 512 pixels), so a batch only makes
    its requests wait for each other; a GPU is where batches pay."""
    if setting == "auto":
        return provider != CPU_PROVIDER and not provider.endswith(":CPU")
    return setting == "on"


def load_spatial_graphs(
    directory: Path, manifest: Manifest, settings: Settings
) -> tuple[PackedGraph, PackedGraph]:
    """The encoder and decoder of a spatial version, each on the engine chosen for it (the
    decoder first), an ONNX Runtime graph warmed at the smallest size the model takes."""
    spec = manifest.spatial
    if spec is None:
        raise ValueError(f"model {manifest.name} has no spatial latent")
    # ONNX Runtime's arena shrinks after each run: a large request's memory comes back.
    specs, options = engine_specs(settings), replace(engine_options(settings), shrink_arena=True)
    opens = {
        which: Opening(directory / f"{which}.onnx", getattr(manifest.dtypes, which), options)
        for which in ("encoder", "decoder")
    }
    again = all(remembered(opening, specs) for opening in opens.values())
    references = {
        which: None if again else opening.open_reference(specs) for which, opening in opens.items()
    }
    judge = None
    if references["encoder"] is not None and references["decoder"] is not None:
        judge = ImageJudge(manifest, references["encoder"], references["decoder"])
    channels = manifest.image.channels
    height, width = check_size(manifest, TRIAL_CELLS)
    trial_image = np.zeros((1, channels, height, width), np.float32)
    trial_latent = np.zeros((1, *spec.latent_shape(height, width)), np.float32)
    graph, choice = pick(
        opens["decoder"],
        specs,
        judge.decoder_gate if judge else no_gate,
        spatial_trial(trial_latent, judge.warmed if judge else None),
    )
    decoder = PackedGraph(graph, manifest.latent_shape, False, choice)
    gate = judge.encoder_gate() if judge else no_gate
    trial = spatial_trial(trial_image, judge.warmed if judge else None)
    graph, choice = pick(opens["encoder"], specs, gate, trial)
    encoder = PackedGraph(graph, manifest.image.shape, False, choice)
    del judge, references
    height, width = check_size(manifest, 0)
    # OpenVINO compiles each input shape: a warm-up at the smallest size would only take one of
    # its few compiled shapes from the sizes traffic brings.
    if encoder.graph.engine != "openvino":
        encoder.graph.run(np.zeros((1, channels, height, width), np.float32))
    if decoder.graph.engine != "openvino":
        decoder.graph.run(np.zeros((1, *spec.latent_shape(height, width)), np.float32))
    return encoder, decoder


def batch_rows_by_pixels(max_pixels: int, pixels_per_cell: int) -> Callable[[tuple[int, ...]], int]:
    """How many rows of a shape fit `max_pixels` image pixels (at least one): a batcher's cap
    for a spatial graph, whose rows [C,h,w] stand for h*w*pixels_per_cell image pixels."""

    def rows(shape: tuple[int, ...]) -> int:
        cells = shape[-1] * shape[-2] if len(shape) >= 2 else 1
        return max(1, max_pixels // max(1, cells * pixels_per_cell))

    return rows


MakeExactRunner = Callable[[PackedGraph, str], Runner]
"""Puts a runner in front of an exact graph, given the graph and which it is (encoder, decoder)."""


def _open_exact(
    opening: Opening, spec: EngineSpec, chosen: PackedGraph, which: str, make: MakeExactRunner
) -> Runner:
    reason = (
        f"{spec.label}: exact results (the /remote routes) for the {chosen.graph.precision} graph"
    )
    graph = PackedGraph(
        opening(spec), chosen.row_shape, chosen.conditional, EngineChoice(spec, reason)
    )
    return make(graph, which)


def exact_runners(
    directory: Path,
    manifest: Manifest,
    settings: Settings,
    chosen: dict[str, PackedGraph],
    make: MakeExactRunner,
) -> dict[str, ExactRunner]:
    """For each of the `chosen` graphs (by name: encoder, decoder) whose precision is not fp32,
    its fp32 graph opened as `load_spatial_graphs` opens graphs (the arena shrinking after each
    run), with `make`'s runner in front, on the first request that asks for exact results."""
    options = replace(engine_options(settings), shrink_arena=True)
    runners = {}
    for which, graph in chosen.items():
        spec = exact_spec(graph.choice, settings)
        if spec is None:
            continue
        opening = Opening(directory / f"{which}.onnx", getattr(manifest.dtypes, which), options)
        runners[which] = ExactRunner(spec, partial(_open_exact, opening, spec, graph, which, make))
    return runners
