"""Loading a video version's graphs: each direction (decoder first, then encoder) on the engine
and precision chosen for it among those the settings allow (`VAE_ENGINE`, `VAE_PRECISION`), as
image models choose (`app/runtime/choice.py`'s rules, over a direction's pair of graphs rather
than one graph): a lower precision must pass the image gate, PSNR >= 40 dB against fp32, on a
seeded check clip walked through the graphs chunk by chunk as serving walks it (a decoder by the
frames it decodes from the fp32 encoder's latents; an encoder by the fp32 decoder's frames of its
latents), and the fastest candidate on that walk is kept. Then both directions are warmed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from app.arrays import FloatArray
from app.config import Settings
from app.repository.manifest import Manifest
from app.runtime.choice import EngineChoice, GateResult, Trial
from app.runtime.engines import EngineSpec
from app.serving import quality
from app.serving.engine_choice import engine_specs, exact_spec, passed_psnr
from app.serving.spatial_io import to_model_range, to_unit_range
from app.serving.video.graphs import (
    ExactDirection,
    TimeGraph,
    VideoGraphs,
    open_direction,
    walk_now,
)

logger = logging.getLogger(__name__)

CHECK_CELLS = 8
"""The check clip's side in latent cells (64 pixels at 8x): precision shows at any size, and an
engine compiles one more shape for it only."""
SEED = quality.SEED


@dataclass
class CheckClip:
    """The seeded clip a version's candidates are judged on: frames in the model's range
    [1, 3, F, H, W], the fp32 encoder's latent means of them, and the fp32 decoder's frames of
    those latents in [0, 1]."""

    frames: FloatArray
    latents: FloatArray
    reference: FloatArray


def check_frames(manifest: Manifest) -> FloatArray:
    """A clip [1, 3, F, H, W] in the model's range: quality's check images as frames, as many
    as the first chunk and one more chunk of latent frames decode to (each graph of a causal
    pair runs), CHECK_CELLS latent cells a side (at least the smallest size taken)."""
    spec, video = manifest.spatial, manifest.video
    if spec is None or video is None:
        raise ValueError(f"model {manifest.name} is not a video model")
    chunks = video.decode
    latent = chunks.first_frames + chunks.chunk_frames if chunks.scheme == "causal_cache" else 2
    side = max(-(-spec.min_size // spec.downscale), CHECK_CELLS) * spec.downscale
    frames = video.frames(latent)
    images = quality.check_images(frames, 3, side, side, SEED)
    return to_model_range(manifest, images.transpose(1, 0, 2, 3)[None].copy())


def latent_means(manifest: Manifest, encoder: TimeGraph, frames: FloatArray) -> FloatArray:
    """The encoder's latent means of a clip (the first half of its moments)."""
    video = manifest.video
    assert video is not None
    latent_frames = video.latent_frames(frames.shape[2]) or 1
    moments = walk_now(encoder, frames, latent_frames)
    channels = manifest.spatial.latent_channels if manifest.spatial else moments.shape[1]
    return moments[:, :channels]


def decoded(manifest: Manifest, decoder: TimeGraph, latents: FloatArray) -> FloatArray:
    """The decoder's frames of latents, in [0, 1]."""
    video = manifest.video
    assert video is not None
    return to_unit_range(manifest, walk_now(decoder, latents, video.frames(latents.shape[2])))


Opener = Callable[[str, EngineSpec], TimeGraph]
Judge = Callable[[TimeGraph], float]


def choose_direction(
    which: str, specs: list[EngineSpec], open_on: Opener, judge: Judge | None, trial: Judge
) -> tuple[TimeGraph, EngineChoice]:
    """The direction on the fastest spec whose `judge` (PSNR in dB against fp32) passes, fp32
    specs always passing; `trial` times a candidate. One spec: opened, neither judged nor
    timed."""
    if len(specs) == 1 or judge is None:
        spec = specs[0]
        reason = f"{spec.label}: the one the settings allow" if len(specs) == 1 else ""
        return open_on(which, spec), EngineChoice(spec, reason or f"{spec.label}: fp32", ())
    trials: list[Trial] = []
    best: tuple[TimeGraph, EngineSpec, float, GateResult | None] | None = None
    for spec in specs:
        try:
            graph = open_on(which, spec)
            gate = None if spec.reference else passed_psnr(judge(graph))
            if gate is not None and not gate.passed:
                trials.append(Trial(spec, gate=gate, refused=gate.text))
                continue
            seconds = trial(graph)
        except Exception as error:  # a candidate that does not open or run is not chosen
            logger.warning("%s %s: %s", which, spec.label, error)
            trials.append(Trial(spec, refused=f"did not run: {error}"))
            continue
        trials.append(Trial(spec, seconds, gate))
        if best is None or seconds < best[2]:
            best = (graph, spec, seconds, gate)
        del graph
    if best is None:
        raise RuntimeError(f"no engine ran the {which}: " + "; ".join(t.refused for t in trials))
    graph, spec, _, gate = best
    times = ", ".join(f"{t.spec.label} {1000 * t.seconds:.3g} ms" for t in trials if t.seconds)
    refused = [f"{t.spec.label} refused: {t.refused}" for t in trials if t.refused]
    parts = [gate.text] if gate is not None else []
    parts += [f"the fastest on the check clip ({times})", *refused]
    return graph, EngineChoice(spec, f"{spec.label}: " + "; ".join(parts), tuple(trials))


def timed(run: Callable[[], object]) -> float:
    """Seconds of one call of `run` (after the gate's run, which compiled its shapes)."""
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def load_video_graphs(directory: Path, manifest: Manifest, settings: Settings) -> VideoGraphs:
    """Both directions of a video version, each on the engine chosen for it, warmed on the
    check clip (which compiles its shapes and checks the graphs run)."""
    specs = engine_specs(settings)

    def open_on(which: str, spec: EngineSpec) -> TimeGraph:
        return open_direction(directory, manifest, which, spec, settings)

    references = [spec for spec in specs if spec.reference]
    frames = check_frames(manifest)
    if len(specs) < 2 or not references:
        decoder, decoder_choice = choose_direction("decoder", specs[:1], open_on, None, _untimed)
        encoder, encoder_choice = choose_direction("encoder", specs[:1], open_on, None, _untimed)
        decoded(manifest, decoder, latent_means(manifest, encoder, frames))  # warm-up
        return VideoGraphs(decoder, encoder, decoder_choice, encoder_choice)
    fp32_decoder, fp32_encoder = (
        open_on("decoder", references[0]),
        open_on("encoder", references[0]),
    )
    latents = latent_means(manifest, fp32_encoder, frames)
    check = CheckClip(frames, latents, decoded(manifest, fp32_decoder, latents))
    reuse = {("decoder", references[0]): fp32_decoder, ("encoder", references[0]): fp32_encoder}

    def open_known(which: str, spec: EngineSpec) -> TimeGraph:
        return reuse.get((which, spec)) or open_on(which, spec)

    def judge_decoder(graph: TimeGraph) -> float:
        return quality.psnr(check.reference, decoded(manifest, graph, check.latents))

    def judge_encoder(graph: TimeGraph) -> float:
        latents = latent_means(manifest, graph, check.frames)
        return quality.psnr(check.reference, decoded(manifest, fp32_decoder, latents))

    def decode_trial(graph: TimeGraph) -> float:
        decoded(manifest, graph, check.latents)  # compiles its shapes (the gate may not have)
        return timed(lambda: decoded(manifest, graph, check.latents))

    def encode_trial(graph: TimeGraph) -> float:
        latent_means(manifest, graph, check.frames)
        return timed(lambda: latent_means(manifest, graph, check.frames))

    decoder, decoder_choice = choose_direction(
        "decoder", specs, open_known, judge_decoder, decode_trial
    )
    encoder, encoder_choice = choose_direction(
        "encoder", specs, open_known, judge_encoder, encode_trial
    )
    exact = {}
    for which, choice in (("decoder", decoder_choice), ("encoder", encoder_choice)):
        logger.info("%s:%d %s: %s", manifest.name, manifest.version, which, choice.reason)
        spec = exact_spec(choice, settings)
        if spec is not None:
            exact[which] = ExactDirection(spec, partial(open_on, which, spec))
    return VideoGraphs(decoder, encoder, decoder_choice, encoder_choice, exact)


def _untimed(graph: TimeGraph) -> float:
    return 0.0
