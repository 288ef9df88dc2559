"""The latent explorer on a video model, in headless Chromium (Debian's, driven by Playwright as
in test_explorer_page.py): `vae serve` with a tiny random-weight HunyuanVideo autoencoder and a
tiny image autoencoder beside it. The page makes two clips, encodes them, plays the decoded clip
in a <video> and decodes a new one where the interpolation slider points."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.integration.test_explorer_page import (
    CHROMIUM,
    CHROMIUM_ARGS,
    WAIT_MS,
    visible_steps,
    watched_page,
)
from tests.support.processes import ServiceProcess, running_service, service_env

MODEL = "hunyuan"
PLAYABLE = """video => video.readyState >= 2 && video.videoWidth > 0 && video.duration > 0"""


@pytest.fixture(scope="module")
def video_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """`vae serve` whose default model is a tiny HunyuanVideo autoencoder, with a tiny TAESD-style
    image autoencoder (`tiny`) beside it."""
    from app.repository.store import ModelRepository
    from app.training.import_diffusers import import_diffusers
    from tests.support.autoencoders import save
    from tests.support.video_models import import_video

    root = tmp_path_factory.mktemp("video-page")
    import_video(root / "models", root, "AutoencoderKLHunyuanVideo", MODEL)
    save("tiny", root / "tiny")
    import_diffusers(ModelRepository(root / "models"), root / "tiny", "tiny")
    env = service_env(root / "models", root, default_model=MODEL)
    with running_service(env, root) as process:
        yield process


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[dev]' (.ci/run does)")
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install chromium chromium-driver (.ci/run does)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


def player(page: Any) -> dict[str, Any]:
    """What the <video> element holds: its source, position on the slider, size and length."""
    return dict(
        page.eval_on_selector(
            "#vid-player",
            """video => ({src: video.currentSrc, t: video.dataset.t, ready: video.readyState,
                          width: video.videoWidth, height: video.videoHeight,
                          duration: video.duration, error: video.error && video.error.message})""",
        )
    )


def wait_for_clip(page: Any, t: str, after: str = "") -> dict[str, Any]:
    """Waits until the player plays a decoded clip of slider point `t` with a source other than
    `after`; returns what it holds."""
    page.wait_for_function(
        f"""() => {{
            const video = document.getElementById("vid-player");
            return video.dataset.t === "{t}" && video.currentSrc !== "{after}" && ({PLAYABLE})(video);
        }}""",
        timeout=WAIT_MS,
    )
    return player(page)


def an_mp4(path: Path, frames: int, side: int) -> Path:
    """A small H.264 mp4 of a square moving over a gradient, written with PyAV."""
    ys, xs = np.mgrid[0:side, 0:side] / side
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = side, side, "yuv420p"
        for f in range(frames):
            rgb = np.stack([xs, ys, 1 - xs], axis=-1) * 200
            rgb[10:30, 4 + 3 * f : 24 + 3 * f] = 255
            frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_a_video_model_plays_a_decoded_clip_and_interpolates_between_two(
    video_page: ServiceProcess, browser: Any, tmp_path: Path
) -> None:
    """The video card replaces the image cards; clip A's reconstruction plays in the <video>
    as an mp4 of the clip's frames; moving the slider decodes the point between A and B; an mp4
    the visitor opens becomes clip B; the image model next to it keeps its own page."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page, problems = watched_page(browser)
    page.goto(video_page.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#status")).to_contain_text("VIDEO AUTOENCODER")
    expect(page.locator("#tagline")).to_have_text("what a video autoencoder learned")
    expect(page.locator("#video-card")).to_be_visible()
    for hidden in ("#spatial-card", "#encode-card", "#sliders-card", "#interp-card",
                   "#samples-card", "#intro-flat", "#intro-spatial"):  # fmt: skip
        expect(page.locator(hidden)).to_be_hidden()
    intro = page.locator("#intro-video")
    for words in ("video autoencoder", "[C, T, h, w]", "C = 16 channels", "1/8 of the frames",
                  "next 4 frames", "no meaningful prior"):  # fmt: skip
        expect(intro).to_contain_text(words)
    assert visible_steps(page) == ["1", "2"]  # the clips, the report figures
    expect(page.locator("#figures-hint")).to_contain_text("a synthetic clip when this version")
    expect(page.locator(".fig-reconstructions figcaption")).to_contain_text(
        "synthetic panning clip"
    )

    first = wait_for_clip(page, "0")  # A's reconstruction: 9 frames of 64x64 at the model's fps
    assert first["src"].startswith("blob:") and first["error"] is None
    assert (first["width"], first["height"]) == (64, 64)
    fps = float(page.locator("#vid-decoded").inner_text().split(" fps")[0].split(" at ")[-1])
    assert first["duration"] == pytest.approx(9 / fps, abs=1.5 / fps)
    expect(page.locator("#vid-summary")).to_contain_text(
        "9 frames of 64\u00d764 \u2192 latent 16\u00d73\u00d78\u00d78"
    )
    expect(page.locator("#vid-caption")).to_contain_text("A's reconstruction")

    page.locator("#vid-t").fill("4")  # halfway to B: a new clip
    middle = wait_for_clip(page, "0.5", after=first["src"])
    assert (middle["width"], middle["height"]) == (64, 64)
    expect(page.locator("#vid-caption")).to_contain_text("lerp(A, B, 0.50)")
    page.select_option("#vid-method", "slerp")
    expect(page.locator("#vid-caption")).to_contain_text("slerp(A, B, 0.50)")

    slerped = player(page)["src"]
    page.set_input_files("#vid-file-b", str(an_mp4(tmp_path / "mine.mp4", 12, 48)))
    expect(page.locator("#vid-b-caption")).to_contain_text("mine.mp4")
    wait_for_clip(page, "0.5", after=slerped)
    assert page.eval_on_selector("#vid-b", "canvas => [canvas.width, canvas.height]") == [64, 64]
    page.screenshot(path=tmp_path / "video.png", full_page=True)

    page.select_option("#model", "tiny:1")  # an image autoencoder: its own card and intro
    expect(page.locator("#spatial-card")).to_be_visible()
    expect(page.locator("#intro-spatial")).to_be_visible()
    expect(page.locator("#tagline")).to_have_text("what an autoencoder learned")
    expect(page.locator("#video-card")).to_be_hidden()
    expect(page.locator("#intro-video")).to_be_hidden()
    stopped = page.eval_on_selector("#vid-player", "v => [v.getAttribute('src'), v.readyState]")
    assert stopped == [None, 0]  # no clip left playing behind the hidden card
    page.select_option("#model", f"{MODEL}:1")  # and back
    expect(page.locator("#video-card")).to_be_visible()
    wait_for_clip(page, "0")
    page.close()
    assert problems == [], "\n".join(problems)
