"""`vae import diffusers` of diffusers' video autoencoders (tiny random-weight HunyuanVideo,
LTX-Video, Wan and Qwen-Image): the graphs each scheme needs, the manifest's time chunks and
normalisation, parity against diffusers' own decode/encode at two frame counts (walked with the
serving side's timeline), and that a failed gate or an unsupported config publishes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import app
from app.repository.manifest import TimeChunks
from app.repository.store import ModelRepository
from tests.support.video_models import (
    LTX_TIMESTEP_OVERRIDES,
    VIDEO_CLASSES,
    WAN_2_2_OVERRIDES,
    import_video,
    save,
)

onnx = pytest.importorskip("onnx")
numpy_helper = pytest.importorskip("onnx.numpy_helper")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRepository, dict[str, Any]]:
    """Each class's tiny model imported once, as its class name in lower case, version 1."""
    root = tmp_path_factory.mktemp("video")
    models = {
        name: import_video(root / "models", root, name, name.lower()) for name in VIDEO_CLASSES
    }
    return ModelRepository(root / "models"), models


def _no_staging(repository: ModelRepository, name: str) -> bool:
    return not list((repository.root / name).glob(".staging-*"))


def _tamper(graph: Path) -> None:
    """Adds 0.5 to the largest initializer of an ONNX graph (a changed weight)."""
    model = onnx.load(str(graph))
    largest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(largest) + np.float32(0.5)
    largest.CopyFrom(numpy_helper.from_array(values.astype(np.float32), largest.name))
    onnx.save(model, str(graph))


@pytest.mark.parametrize(
    ("class_name", "scheme", "graphs", "downscale", "temporal", "channels", "fps"),
    [
        ("AutoencoderKLHunyuanVideo", "temporal_tiles", 2, 8, 4, 16, 24.0),
        ("AutoencoderKLLTXVideo", "temporal_tiles", 2, 32, 8, 8, 24.0),
        ("AutoencoderKLWan", "causal_cache", 4, 8, 4, 16, 16.0),
        ("AutoencoderKLQwenImage", "causal_cache", 4, 8, 4, 16, 16.0),
    ],
)
def test_each_class_is_published_as_a_video_autoencoder_that_matches_diffusers(
    imported: tuple[ModelRepository, dict[str, Any]],
    class_name: str,
    scheme: str,
    graphs: int,
    downscale: int,
    temporal: int,
    channels: int,
    fps: float,
) -> None:
    repository, _ = imported
    manifest = repository.manifest(class_name.lower(), 1)
    assert manifest.kind == "video_autoencoder" and manifest.video is not None
    assert manifest.spatial is not None and manifest.value_range == (-1.0, 1.0)
    assert (manifest.spatial.latent_channels, manifest.spatial.downscale) == (channels, downscale)
    assert manifest.video.temporal_downscale == temporal and manifest.video.fps == fps
    assert manifest.video.decode.scheme == scheme
    assert manifest.video.encode is not None and manifest.video.encode.scheme == scheme
    onnx_files = sorted(f for f in manifest.files if f.endswith(".onnx"))
    assert len(onnx_files) == graphs
    assert manifest.source["format"] == "diffusers" and manifest.source["class"] == class_name
    assert manifest.dtypes.decoder == "float32" and not manifest.prior_meaningful
    assert any(f.endswith("reconstructions.png") for f in manifest.files)
    assert manifest.source["reconstructions"]["reconstruction_mae"] >= 0
    # two frame counts (one call, several chunks), each encoder and decoder, all under the gate
    assert len([k for k in manifest.parity if k.startswith("decoder_T")]) == 2
    assert 0 <= manifest.parity["max_rel_err"] <= 1e-3


def test_normalisation_comes_from_each_family_s_own_place(
    imported: tuple[ModelRepository, dict[str, Any]],
) -> None:
    repository, models = imported
    hunyuan = repository.manifest("autoencoderklhunyuanvideo", 1)
    assert hunyuan.scaling_factor == pytest.approx(0.476986) and hunyuan.latents_mean == []
    wan = repository.manifest("autoencoderklwan", 1)
    assert wan.latents_mean == pytest.approx(models["AutoencoderKLWan"].config.latents_mean)
    assert wan.latents_std == pytest.approx(models["AutoencoderKLWan"].config.latents_std)
    ltx = repository.manifest("autoencoderklltxvideo", 1)  # buffers, not config
    assert ltx.latents_mean == pytest.approx(models["AutoencoderKLLTXVideo"].latents_mean.tolist())
    assert ltx.latents_std[-1] == pytest.approx(2.0)


def test_time_chunks_follow_diffusers_tiling_and_chunk_loops(
    imported: tuple[ModelRepository, dict[str, Any]],
) -> None:
    from app.training.import_video import FrameTiles, time_chunks

    repository, _ = imported
    # HunyuanVideo's own tiling (16 frames every 12): 5 latent frames a tile, every 3
    decode, encode = time_chunks("AutoencoderKLHunyuanVideo", 4, FrameTiles(16, 12), (0, 0))
    assert decode == TimeChunks(
        scheme="temporal_tiles", chunk_frames=5, stride_frames=3, blend_frames=4, out_stride=12
    )
    assert encode == TimeChunks(
        scheme="temporal_tiles", chunk_frames=17, stride_frames=12, blend_frames=1, out_stride=3
    )
    ltx = repository.manifest("autoencoderklltxvideo", 1).video
    assert ltx is not None and ltx.decode.drop == "last" and ltx.decode.chunk_frames == 3
    wan = repository.manifest("autoencoderklwan", 1).video
    assert wan is not None and wan.encode is not None
    assert (wan.decode.first_frames, wan.decode.chunk_frames) == (1, 1)
    assert (wan.encode.first_frames, wan.encode.chunk_frames) == (1, 4)
    assert wan.decode.caches > 0 and wan.encode.caches > 0


def test_causal_graphs_take_and_give_their_caches_by_name(
    imported: tuple[ModelRepository, dict[str, Any]],
) -> None:
    from app.runtime.sessions import cpu_session

    repository, _ = imported
    manifest = repository.manifest("autoencoderklwan", 1)
    assert manifest.video is not None
    caches = manifest.video.decode.caches
    directory = repository.version_dir("autoencoderklwan", 1)
    first = cpu_session(directory / "decoder_first.onnx")
    chunk = cpu_session(directory / "decoder.onnx")
    assert [i.name for i in first.get_inputs()] == ["z"]
    assert [o.name for o in first.get_outputs()] == ["x"] + [
        f"cache_out_{i}" for i in range(caches)
    ]
    assert [i.name for i in chunk.get_inputs()] == ["z"] + [f"cache_in_{i}" for i in range(caches)]
    z = np.random.default_rng(0).standard_normal((1, 16, 1, 2, 3)).astype(np.float32)
    x, *cache = first.run(None, {"z": z})
    assert x.shape == (1, 3, 1, 16, 24) and all(c.shape[2] == 2 for c in cache)
    feeds = {"z": z, **{f"cache_in_{i}": c for i, c in enumerate(cache)}}
    assert chunk.run(None, feeds)[0].shape == (1, 3, 4, 16, 24)


def test_a_graph_changed_after_export_fails_the_parity_gate(
    imported: tuple[ModelRepository, dict[str, Any]], tmp_path: Path
) -> None:
    from app.training.import_diffusers import ParityError
    from app.training.import_video import Clip, VideoGraphs, check_video_parity

    repository, models = imported
    vae = models["AutoencoderKLWan"]
    copy = shutil.copytree(repository.version_dir("autoencoderklwan", 1), tmp_path / "graphs")
    _tamper(copy / "decoder.onnx")  # the chunk graph: only the longer clip runs it
    graphs = VideoGraphs(copy, repository.manifest("autoencoderklwan", 1))
    assert check_video_parity(vae, graphs, [Clip(1, 1, 2, 3)], 1e-3)["max_rel_err"] < 1e-3
    with pytest.raises(ParityError, match="nothing published"):
        check_video_parity(vae, graphs, [Clip(1, 2, 2, 3)], 1e-3)


def test_a_failed_gate_publishes_nothing(tmp_path: Path) -> None:
    from app.training.import_diffusers import ParityError
    from app.training.import_video import import_video_autoencoder

    save("AutoencoderKLHunyuanVideo", tmp_path / "hunyuan")
    repository = ModelRepository(tmp_path / "models")
    with pytest.raises(ParityError):
        import_video_autoencoder(repository, tmp_path / "hunyuan", "refused", tolerance=0.0)
    assert repository.versions("refused") == [] and _no_staging(repository, "refused")


def test_vae_import_diffusers_takes_a_video_folder(tmp_path: Path) -> None:
    save("AutoencoderKLHunyuanVideo", tmp_path / "hunyuan")
    models = tmp_path / "models"
    command = ["import", "diffusers", str(tmp_path / "hunyuan"), "--name", "clip"]
    result = CliRunner().invoke(app, [*command, "--models-dir", str(models)])
    assert result.exit_code == 0, result.output
    assert "published clip:1 (AutoencoderKLHunyuanVideo" in result.output
    assert ModelRepository(models).manifest("clip", 1).kind == "video_autoencoder"
    refused = CliRunner().invoke(app, [*command, "--fp16", "--models-dir", str(models)])
    assert refused.exit_code != 0 and "float32 only" in str(refused.exception)


def test_a_noise_injecting_ltx_decoder_is_refused(tmp_path: Path) -> None:
    from app.training.import_video import import_video_autoencoder

    noisy = [True, False, False, False, False]
    save("AutoencoderKLLTXVideo", tmp_path / "ltx", decoder_inject_noise=noisy)
    repository = ModelRepository(tmp_path / "models")
    with pytest.raises(ValueError, match="injects random noise"):
        import_video_autoencoder(repository, tmp_path / "ltx", "ltx")
    assert repository.versions("ltx") == [] and _no_staging(repository, "ltx")


def test_a_timestep_conditioned_ltx_decoder_is_served_at_a_fixed_decode_timestep(
    tmp_path: Path,
) -> None:
    from app.training.import_video import import_video_autoencoder

    save("AutoencoderKLLTXVideo", tmp_path / "ltx", **LTX_TIMESTEP_OVERRIDES)
    repository = ModelRepository(tmp_path / "models")
    _, manifest = import_video_autoencoder(repository, tmp_path / "ltx", "ltx")
    assert manifest.source["decode_timestep"] == 0.0
    assert manifest.parity["max_rel_err"] <= 1e-3


def test_wan_2_2_patchified_vae_is_imported_with_its_patches_inside_the_graphs(
    tmp_path: Path,
) -> None:
    from app.training.import_video import import_video_autoencoder

    save("AutoencoderKLWan", tmp_path / "wan22", **WAN_2_2_OVERRIDES)
    repository = ModelRepository(tmp_path / "models")
    _, manifest = import_video_autoencoder(repository, tmp_path / "wan22", "wan22")
    assert manifest.spatial is not None and manifest.video is not None
    assert (manifest.spatial.latent_channels, manifest.spatial.downscale) == (48, 16)
    assert manifest.video.fps == 24.0 and len(manifest.latents_mean) == 48
    assert manifest.parity["max_rel_err"] <= 1e-3
