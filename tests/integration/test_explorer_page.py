"""The latent explorer page (GET /), driven in headless Chromium the way a visitor uses it, and the
CORS settings other frontends rely on (VAE_CORS_ORIGINS).

Chromium comes from Debian (packages chromium and chromium-driver) and is driven by Playwright's
Python package through executable_path: no browser is ever downloaded. `.ci/run` installs both;
if either is missing the test fails and says so, rather than skipping.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image, ImageStat

from tests.support.processes import ServiceProcess, running_service, service_env
from tests.support.synthetic import write_npz

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FRONTEND = "http://localhost:5173"  # another frontend, allowed by VAE_CORS_ORIGINS here
WAIT_MS = 30_000
STATIC = Path(__file__).resolve().parents[2] / "app" / "static"
FIGURES = ("reconstructions", "samples", "interpolation", "latent_map")


@pytest.fixture(scope="module")
def explorer(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """`vae serve` with the shipped model and one allowed CORS origin."""
    logs = tmp_path_factory.mktemp("explorer")
    env = service_env(models_dir, logs, cors_origins=json.dumps([FRONTEND]))
    with running_service(env, logs) as process:
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


def png_pixels(data_url_or_b64: str) -> np.ndarray:
    """A base64 PNG (or a data: URL of one) as a float array in [0, 1]."""
    text = data_url_or_b64.split(",", 1)[-1]
    with Image.open(io.BytesIO(base64.b64decode(text))) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def assert_not_blank(path: Path, min_stddev: float = 8.0) -> None:
    """A screenshot with something on it: its pixels vary, in every colour band."""
    with Image.open(path) as image:
        stddev = ImageStat.Stat(image.convert("RGB")).stddev
    assert min(stddev) > min_stddev, f"{path.name} looks blank (pixel stddev {stddev})"


def watch_problems(page: Any) -> list[str]:
    """A list that collects the page's console errors, uncaught errors and failed responses."""
    problems: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            problems.append(f"console.error: {message.text}")

    def on_response(reply: Any) -> None:
        if reply.status >= 400:
            problems.append(f"{reply.status} from {reply.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("response", on_response)
    return problems


def watched_page(browser: Any) -> tuple[Any, list[str]]:
    """A desktop-size page, and the list its console errors and failed responses go to."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    return page, watch_problems(page)


def meter_counts(page: Any) -> tuple[int, int]:
    """(slider positions, /decode requests) as the sliders card reports them."""
    meter = page.locator("#decode-meter").inner_text()
    found = re.findall(r"(\d+) (?:slider positions|/decode)", meter)
    return (int(found[0]), int(found[1])) if len(found) == 2 else (0, 0)


class DecodeWatch:
    """Counts the page's single-latent /decode requests (the live slider's) and how many were
    in flight at once."""

    def __init__(self) -> None:
        self.open: set[Any] = set()
        self.sent = 0
        self.most_in_flight = 0

    @staticmethod
    def _is_slider_decode(request: Any) -> bool:
        if not request.url.endswith("/decode") or request.method != "POST":
            return False
        return len(json.loads(request.post_data or "{}").get("latents", [])) == 1

    def reset(self) -> None:
        self.sent = 0
        self.most_in_flight = len(self.open)

    def started(self, request: Any) -> None:
        if self._is_slider_decode(request):
            self.open.add(request)
            self.sent += 1
            self.most_in_flight = max(self.most_in_flight, len(self.open))

    def ended(self, request: Any) -> None:
        self.open.discard(request)


def draw_digit(page: Any) -> None:
    """Draws a '2' on the pad with the mouse."""
    pad = page.locator("#pad")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    points = [(90, 90), (120, 62), (170, 62), (196, 96), (188, 138), (148, 176), (98, 216)]
    points += [(84, 226), (204, 226)]
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y, steps=6)
    page.mouse.up()


def sources(page: Any, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "images => images.map(i => i.src)")


def report_figures(manifest: dict[str, Any]) -> list[str]:
    """The report figures a version's manifest lists (as `report/<figure>.png` files)."""
    files = manifest.get("files", {})
    return [name for name in FIGURES if f"report/{name}.png" in files]


def expect_report_figures(page: Any, manifest: dict[str, Any]) -> None:
    """The "Report figures" card shows every figure the manifest lists, each loaded, and no
    "no report figures" note."""
    from playwright.sync_api import expect

    figures = report_figures(manifest)
    expect(page.locator("#figures img")).to_have_count(len(figures))
    expect(page.locator("#figures-empty")).to_be_hidden()
    classes = page.eval_on_selector_all("#figures figure", "fs => fs.map(f => f.className)")
    assert classes == [f"fig-{name}" for name in figures]
    for image in page.locator("#figures img").all():
        image.scroll_into_view_if_needed()
        expect(image).to_have_js_property("complete", True)
        assert image.evaluate("i => i.naturalWidth") > 0


def test_the_report_card_shows_the_shipped_models_figures(
    explorer: ServiceProcess, browser: Any, tmp_path: Path
) -> None:
    """The shipped version lists its four figures as report/*.png: the card shows all four."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    manifest = explorer_manifest(explorer)
    assert report_figures(manifest) == list(FIGURES)
    page, problems = watched_page(browser)
    page.goto(explorer.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect_report_figures(page, manifest)
    page.locator("#figures").screenshot(path=tmp_path / "figures.png")
    page.close()
    assert_not_blank(tmp_path / "figures.png")
    assert problems == [], "\n".join(problems)


def test_explorer_page_in_headless_chromium(
    explorer: ServiceProcess, browser: Any, tmp_path: Path, heldout_digits: Any
) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page, problems = watched_page(browser)
    watch = DecodeWatch()
    page.on("request", watch.started)
    page.on("requestfinished", watch.ended)
    page.on("requestfailed", watch.ended)

    # The first view: a model picked, samples, an interpolation, the report; no label picker.
    page.goto(explorer.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    manifest = explorer_manifest(explorer)
    latent_dim = manifest["latent_dim"]
    expect(page.locator("#status")).to_contain_text(f"{latent_dim}-d latent")
    expect(page.locator("#label-picker")).to_be_hidden()
    expect(page.locator("#samples img")).to_have_count(32)
    expect(page.locator("#strip-lerp img")).to_have_count(10)
    expect(page.locator("#strip-slerp img")).to_have_count(10)
    expect(page.locator("#slider-image")).to_have_attribute("src", re.compile("^data:image/png"))
    expect(page.locator("#sliders input[type=range]")).to_have_count(min(8, latent_dim))
    expect(page.locator("#traversal img")).to_have_count(7 * min(8, latent_dim))
    expect(page.locator("#metrics dd").first).to_be_visible()
    expect_report_figures(page, manifest)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top
    page.screenshot(path=tmp_path / "first-view.png", full_page=True)

    # Draw a digit: the model's-size input, its reconstruction and its posterior appear.
    draw_digit(page)
    expect(page.locator("#recon")).to_have_attribute("src", re.compile("^data:image/png"))
    expect(page.locator("#posterior g.dim")).to_have_count(latent_dim)
    assert page.locator("#posterior g.dim:not(.idle)").count() >= 1, "no dimension moved"
    expect(page.locator("#posterior-summary")).to_contain_text("KL to the prior")
    assert png_pixels(page.locator("#recon").get_attribute("src")).std() > 0.05
    page.locator("#encode-card").screenshot(path=tmp_path / "encode.png")

    # Open a scanned-looking digit (dark ink on white paper, 4x the model's size): the pad turns
    # it around and the model gets it back at its own size.
    digit = heldout_digits[0][0]
    scan = tmp_path / "scan.png"
    Image.fromarray(255 - digit).resize((112, 112), Image.Resampling.BICUBIC).save(scan)
    before = page.locator("#recon").get_attribute("src")
    page.set_input_files("#file", scan)
    expect(page.locator("#frame")).not_to_be_checked()
    page.wait_for_function("before => document.getElementById('recon').src !== before", arg=before)
    seen = png_pixels(page.eval_on_selector("#input-preview", "c => c.toDataURL('image/png')"))
    assert seen.shape == digit.shape
    assert np.corrcoef(seen.ravel(), digit.ravel().astype(np.float32))[0, 1] > 0.9

    # Interpolate from the drawing to a random sample, in 8 steps, and scrub along the path.
    page.click("#a-drawing")
    expect(page.locator("#a-caption")).to_have_text("your drawing")
    page.click("#b-random")
    expect(page.locator("#b-caption")).to_have_text(re.compile(r"^sample, seed \d+$"))
    page.select_option("#steps", "8")
    page.click("#interpolate")
    expect(page.locator("#strip-lerp img")).to_have_count(8)
    expect(page.locator("#strip-slerp img")).to_have_count(8)
    page.locator("#t").focus()
    page.keyboard.press("End")
    expect(page.locator("#t-value")).to_contain_text("step 8 of 8")
    assert page.locator("#big-slerp").get_attribute("src") == sources(page, "#strip-slerp img")[7]
    lerp, slerp = sources(page, "#strip-lerp img"), sources(page, "#strip-slerp img")
    assert lerp[3] != slerp[3], "lerp and slerp should differ in the middle of the path"
    assert png_pixels(lerp[0]).std() > 0.05
    page.locator("#interp-card").screenshot(path=tmp_path / "interpolation.png")

    # A sample grid: seed 42, 16 samples; a colder temperature changes them, and going back to
    # the same temperature gives the same images again.
    page.select_option("#count", "16")
    page.fill("#seed", "42")
    page.locator("#seed").press("Enter")
    page.locator("#seed").blur()
    expect(page.locator("#samples")).to_have_attribute("data-seed", "42")
    expect(page.locator("#samples img")).to_have_count(16)
    first = sources(page, "#samples img")
    assert len(set(first)) > 8, "16 samples from the prior should not be copies"
    page.locator("#temperature").focus()
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    expect(page.locator("#temperature-value")).to_have_text("0.50")
    page.wait_for_function(
        "before => [...document.querySelectorAll('#samples img')].some((i, k) => i.src !== before[k])",
        arg=first,
        timeout=WAIT_MS,
    )
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "before => [...document.querySelectorAll('#samples img')].every((i, k) => i.src === before[k])",
        arg=first,
        timeout=WAIT_MS,
    )
    page.locator("#samples-card").screenshot(path=tmp_path / "samples.png")

    # Drag the first latent slider (the dimension with the most KL) slowly to its right end: the
    # image changes while it moves, the slider's requests never overlap and coalesce, and the
    # last position is the one shown.
    before = page.locator("#slider-image").get_attribute("src")
    positions_before, requests_before = meter_counts(page)
    watch.reset()
    slider = page.locator("#sliders input[type=range]").first
    dim = int(slider.get_attribute("data-dim"))
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    middle_x, middle_y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(middle_x, middle_y)
    page.mouse.down()
    for step in range(1, 41):
        page.mouse.move(middle_x + step * (box["width"] / 2 + 20) / 40, middle_y)
        page.wait_for_timeout(15)
    page.mouse.up()
    assert slider.input_value() == "3"
    expect(page.locator("#decode-meter")).to_contain_text("0 in flight")
    page.wait_for_function(
        "before => document.getElementById('slider-image').src !== before", arg=before
    )
    positions, requests = meter_counts(page)
    positions, requests = positions - positions_before, requests - requests_before
    assert watch.most_in_flight == 1, "slider decodes must never overlap"
    assert watch.sent == requests, "the page's count of its requests is the network's"
    assert 2 <= requests < positions, (
        f"{positions} slider positions should coalesce into fewer, but several, requests"
        f" (sent {requests})"
    )
    z = [0.0] * latent_dim
    z[dim] = 3.0
    with explorer.client() as http:
        expected = http.post("/decode", json={"latents": [z]}).json()["images"][0]
    shown = png_pixels(page.locator("#slider-image").get_attribute("src"))
    assert np.abs(shown - png_pixels(expected)).max() <= 2 / 255, "the newest position is shown"
    page.locator("#sliders-card").screenshot(path=tmp_path / "sliders.png")
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top
    page.screenshot(path=tmp_path / "explored.png", full_page=True)

    # A phone-sized window: nothing spills sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=tmp_path / "narrow.png", full_page=True)
    page.close()

    for shot in (
        "first-view",
        "encode",
        "interpolation",
        "samples",
        "sliders",
        "explored",
        "narrow",
    ):
        assert_not_blank(tmp_path / f"{shot}.png")
    assert problems == [], "\n".join(problems)


def trained_service(
    factory: pytest.TempPathFactory, name: str, config: dict[str, Any]
) -> Iterator[ServiceProcess]:
    """For a module fixture: trains `config` on 600 synthetic images as model `name` and serves
    it as the default model until the module ends."""
    from app.repository.store import ModelRepository
    from app.training.config import TrainConfig
    from app.training.pipeline import run_training

    root = factory.mktemp(name)
    data = write_npz(root / f"{name}.npz", 600)
    run_training(TrainConfig.model_validate(config), data, name, ModelRepository(root / "models"))
    with running_service(service_env(root / "models", root, default_model=name), root) as process:
        yield process


@pytest.fixture(scope="module")
def conditional(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """`vae serve` whose default model is a small conditional VAE (kind cvae, four classes)."""
    config = {"kind": "cvae", "epochs": 1, "hidden": [64], "latent_dim": 4, "eval_k": 10}
    yield from trained_service(tmp_path_factory, "shapes", config)


def test_label_picker_for_a_conditional_model(
    conditional: ServiceProcess, browser: Any, tmp_path: Path
) -> None:
    """The picker shows a conditional model's classes, and every request carries the label."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    manifest = explorer_manifest(conditional)
    assert manifest["kind"] == "cvae"
    page, problems = watched_page(browser)
    bodies: list[dict[str, Any]] = []

    def on_request(request: Any) -> None:
        if request.method == "POST":
            bodies.append(json.loads(request.post_data or "{}"))

    def is_label_2_samples(reply: Any) -> bool:
        body = json.loads(reply.request.post_data or "{}")
        return reply.url.endswith("/sample") and body.get("label") == 2

    page.on("request", on_request)
    page.goto(conditional.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#label-picker")).to_be_visible()
    expect(page.locator("#label option")).to_have_text(manifest["classes"])
    expect(page.locator("#samples img")).to_have_count(32)
    first = sources(page, "#samples img")
    draw_digit(page)
    expect(page.locator("#recon")).to_have_attribute("src", re.compile("^data:image/png"))
    with page.expect_response(is_label_2_samples):
        page.select_option("#label", "2")
    page.wait_for_function(
        "before => [...document.querySelectorAll('#samples img')].some((i, k) => i.src !== before[k])",
        arg=first,
        timeout=WAIT_MS,
    )
    # a version trained now draws its map with its own legend: the page adds none
    image = page.locator(".fig-latent_map img")
    image.scroll_into_view_if_needed()
    expect(image).to_have_js_property("complete", True)
    width, height = image.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert width > height
    expect(page.locator(".fig-latent_map .map-legend")).to_be_hidden()
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header at the top
    page.screenshot(path=tmp_path / "conditional.png", full_page=True)
    page.close()
    assert_not_blank(tmp_path / "conditional.png")
    assert bodies, "the page sent no requests"
    assert all(body.get("label") in manifest["label_values"] for body in bodies), bodies
    assert {body["label"] for body in bodies} == {0, 2}
    assert problems == [], "\n".join(problems)


@pytest.fixture(scope="module")
def code_grid_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """`vae serve` whose default model is a small VQ-VAE (kind vqvae, a 7 x 7 code grid)."""
    config = {"kind": "vqvae", "epochs": 1, "num_embeddings": 16, "embedding_dim": 2,
              "conv_channels": [8, 16], "prior_epochs": 1, "prior_channels": 8,
              "prior_layers": 1, "quality": False}  # fmt: skip
    yield from trained_service(tmp_path_factory, "vq", config)


def test_a_vqvae_shows_its_code_grid_and_decodes(
    code_grid_model: ServiceProcess, browser: Any, tmp_path: Path
) -> None:
    """A drawing encodes to its code grid (no posterior chart) and reconstructs from z_e; the
    sliders, samples and interpolation decode as for any kind."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    manifest = explorer_manifest(code_grid_model)
    assert manifest["kind"] == "vqvae"
    height, width = manifest["grid"]
    page, problems = watched_page(browser)
    page.goto(code_grid_model.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#status")).to_contain_text("VQVAE")
    expect(page.locator("#posterior-block")).to_be_hidden()
    expect(page.locator("#codes-block")).to_be_visible()
    expect(page.locator("#label-picker")).to_be_hidden()
    expect(page.locator("#samples img")).to_have_count(32)
    expect(page.locator("#strip-lerp img")).to_have_count(10)
    expect(page.locator("#slider-image")).to_have_attribute("src", re.compile("^data:image/png"))
    draw_digit(page)
    expect(page.locator("#recon")).to_have_attribute("src", re.compile("^data:image/png"))
    expect(page.locator("#code-grid tr")).to_have_count(height)
    expect(page.locator("#code-grid td")).to_have_count(height * width)
    codes = [int(text) for text in page.locator("#code-grid td").all_inner_texts()]
    assert all(0 <= code < manifest["codebook_size"] for code in codes)
    expect(page.locator("#codes-summary")).to_contain_text(f"{height}\u00d7{width} codes")
    expect(page.locator("#recon-caption")).to_contain_text("z_e")
    before = page.locator("#slider-image").get_attribute("src")
    page.click("#to-sliders")
    page.wait_for_function(
        "before => document.getElementById('slider-image').src !== before", arg=before
    )
    page.click("#a-drawing")
    expect(page.locator("#a-caption")).to_have_text("your drawing")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=tmp_path / "vqvae.png", full_page=True)
    page.close()
    assert_not_blank(tmp_path / "vqvae.png")
    assert problems == [], "\n".join(problems)


def explorer_manifest(service: ServiceProcess) -> dict[str, Any]:
    """The default model's default version's manifest, as the page reads it."""
    with service.client() as http:
        listing = http.get("/models").json()
    model = next(m for m in listing["models"] if m["name"] == listing["default"])
    version = next(v for v in model["versions"] if v["version"] == model["default_version"])
    return dict(version["manifest"])


# ---------------------------------------------------------------- the page's files


def test_page_and_its_files_are_served(explorer: ServiceProcess) -> None:
    with explorer.client() as http:
        page = http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        referenced = set(re.findall(r'"/static/([\w.-]+)"', page.text))
        for script in STATIC.glob("*.js"):
            referenced |= set(re.findall(r'from "\./([\w.-]+)"', script.read_text()))
        assert {
            "explorer.js",
            "explorer.css",
            "api.js",
            "draw.js",
            "charts.js",
            "views.js",
            "report.js",
        } <= referenced
        for name in referenced:
            reply = http.get(f"/static/{name}")
            assert reply.status_code == 200, name
            kind = "text/javascript" if name.endswith(".js") else "text/css"
            assert reply.headers["content-type"].startswith(kind), name
            assert reply.content == (STATIC / name).read_bytes()


@pytest.mark.parametrize(
    "path", ["/static/nothing.js", "/static/.hidden.js", "/static/..%2Fmain.py", "/static/x.py"]
)
def test_only_the_pages_own_files_are_served(explorer: ServiceProcess, path: str) -> None:
    with explorer.client() as http:
        reply = http.get(path)
    assert reply.status_code == 404
    assert "message" in reply.json()


# ---------------------------------------------------------------- CORS


def test_cors_allows_the_configured_origin(explorer: ServiceProcess) -> None:
    with explorer.client() as http:
        preflight = http.options(
            "/decode",
            headers={
                "Origin": FRONTEND,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == FRONTEND
        assert "POST" in preflight.headers["access-control-allow-methods"]
        reply = http.post("/sample", json={"n": 1, "seed": 1}, headers={"Origin": FRONTEND})
        assert reply.status_code == 200
        assert reply.headers["access-control-allow-origin"] == FRONTEND


def test_cors_refuses_other_origins(explorer: ServiceProcess) -> None:
    stranger = "http://elsewhere.example"
    with explorer.client() as http:
        reply = http.post("/sample", json={"n": 1, "seed": 1}, headers={"Origin": stranger})
        assert reply.status_code == 200
        assert "access-control-allow-origin" not in reply.headers
        preflight = http.options(
            "/decode", headers={"Origin": stranger, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 400
        assert "access-control-allow-origin" not in preflight.headers


def test_no_cors_headers_unless_configured(service: ServiceProcess) -> None:
    with service.client() as http:
        reply = http.post("/sample", json={"n": 1, "seed": 1}, headers={"Origin": FRONTEND})
    assert reply.status_code == 200
    assert "access-control-allow-origin" not in reply.headers


# ---------------------------------------------------------------- a spatial model


@pytest.fixture(scope="module")
def spatial_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """`vae serve` whose default model is a tiny TAESD-style autoencoder imported from diffusers
    (a tiny AutoencoderKL beside it)."""
    from tests.support.autoencoders import import_both

    root = tmp_path_factory.mktemp("spatial-page")
    import_both(root / "models", root)
    with running_service(service_env(root / "models", root, default_model="tiny"), root) as process:
        yield process


def _picture(path: Path, width: int, height: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width] / max(width, height)
    a, b = rng.uniform(0.2, 0.8, (2, 3))
    pixels = np.stack([a[c] * xs + b[c] * ys for c in range(3)], axis=-1) * 255
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def test_a_spatial_model_encodes_a_dropped_image_and_interpolates_between_two(
    spatial_model: ServiceProcess, browser: Any, tmp_path: Path
) -> None:
    """The page hides the flat-latent cards for an autoencoder, shows a dropped image's
    reconstruction and each of its latent channels, and the lerp and slerp strips from A to B."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page, problems = watched_page(browser)
    page.goto(spatial_model.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#status")).to_contain_text("AUTOENCODER")
    expect(page.locator("#spatial-card")).to_be_visible()
    for flat in ("#encode-card", "#sliders-card", "#interp-card", "#samples-card"):
        expect(page.locator(flat)).to_be_hidden()
    page.set_input_files("#sp-file-a", str(_picture(tmp_path / "a.png", 48, 32, 1)))
    expect(page.locator("#sp-recon")).to_have_attribute("src", re.compile("^data:image/png"))
    expect(page.locator("#sp-channels canvas")).to_have_count(4)
    expect(page.locator("#sp-latent-summary")).to_contain_text(
        "48\u00d732 pixels \u2192 latent 4\u00d716\u00d724"
    )
    recon = png_pixels(page.locator("#sp-recon").get_attribute("src") or "")
    assert recon.shape == (32, 48)
    page.set_input_files("#sp-file-b", str(_picture(tmp_path / "b.png", 64, 64, 2)))
    expect(page.locator("#sp-strip-lerp img")).to_have_count(8)
    expect(page.locator("#sp-strip-slerp img")).to_have_count(8)
    page.select_option("#model", "kl:1")
    expect(page.locator("#status")).to_contain_text("kl:1")
    expect(page.locator("#sp-channels canvas")).to_have_count(0)
    page.set_input_files("#sp-file-a", str(_picture(tmp_path / "a.png", 48, 32, 1)))
    expect(page.locator("#sp-channels canvas")).to_have_count(4)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=tmp_path / "spatial.png", full_page=True)
    page.close()
    assert_not_blank(tmp_path / "spatial.png")
    assert problems == [], "\n".join(problems)


def offline_page(browser: Any) -> tuple[Any, list[str]]:
    """A page that can reach 127.0.0.1 only: every request to another host is aborted, and
    listed in the returned list."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    blocked: list[str] = []

    def only_this_machine(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", only_this_machine)
    return page, blocked


def documented_operations(service: ServiceProcess) -> list[tuple[str, str]]:
    """(METHOD, path) of every operation in the service's OpenAPI document."""
    with service.client() as http:
        paths = http.get("/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


def test_swagger_ui_shows_the_operations_with_no_other_host_reachable(
    explorer: ServiceProcess, browser: Any, tmp_path: Path
) -> None:
    """/docs renders every documented operation from the service's own assets alone."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    operations = documented_operations(explorer)
    page, blocked = offline_page(browser)
    problems = watch_problems(page)
    page.goto(explorer.url + "/docs")
    expect(page.locator(".opblock")).to_have_count(len(operations))
    expect(page.locator(".info .title")).to_contain_text("vae-service")
    shown = [
        (block.locator(".opblock-summary-method").inner_text().strip(),
         block.locator(".opblock-summary-path").get_attribute("data-path"))
        for block in page.locator(".opblock").all()
    ]  # fmt: skip
    assert sorted(shown) == sorted(operations)
    page.locator(".opblock-summary", has_text="/sample").first.click()  # an operation opens
    expect(
        page.locator(
            ".opblock.is-open .parameters-container, .opblock.is-open .opblock-section-request-body"
        ).first
    ).to_be_visible()
    page.screenshot(path=tmp_path / "docs.png", full_page=False)
    page.close()
    assert_not_blank(tmp_path / "docs.png", min_stddev=4.0)
    assert blocked == [], f"/docs asked other hosts for {blocked}"
    assert problems == [], "\n".join(problems)


def test_no_redoc_page(explorer: ServiceProcess) -> None:
    """ReDoc is not served: its bundle loads its logo from a CDN (/docs is the one docs page)."""
    with explorer.client() as http:
        assert http.get("/redoc").status_code == 404


def visible_steps(page: Any) -> list[str]:
    """The step numbers of the page's visible sections, top to bottom."""
    return [
        number.inner_text().strip()
        for number in page.locator("main > section:visible h2 .step").all()
    ]


def test_a_spatial_model_gets_its_own_intro_numbering_and_wording(
    spatial_model: ServiceProcess, browser: Any
) -> None:
    """An imported autoencoder is introduced as one (latent grid, downscale, its factors, no
    meaningful prior), not as a VAE; its visible sections are numbered 1, 2; its factors read as
    sentences; its figures say they were drawn when it was imported."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page, problems = watched_page(browser)
    page.goto(spatial_model.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#status")).to_contain_text("tiny:1")
    expect(page.locator("#intro-flat")).to_be_hidden()
    expect(page.locator("#tagline")).to_have_text("what an autoencoder learned")
    intro = page.locator("#intro-spatial")
    expect(intro).to_be_visible()
    for words in ("autoencoder", "[C, h, w]", "C = 4 channels", "1/2 of the image", "no shift",
                  "no meaningful prior"):  # fmt: skip
        expect(intro).to_contain_text(words)
    assert "q(z|x)" not in intro.inner_text()
    assert visible_steps(page) == ["1", "2"]
    about = page.locator("#sp-about").inner_text()
    assert "scaling factor 1.0, no shift." in about or "scaling factor 1, no shift." in about
    assert "shift 0" not in about
    assert re.search(r"\. Its latents are what a diffusion model denoises[^.]*\.$", about), about
    hint = page.locator("#figures-hint")
    expect(hint).to_contain_text("when this version was imported (from diffusers)")
    expect(hint).not_to_contain_text("trained")
    expect(page.locator(".fig-reconstructions figcaption")).to_contain_text("probe images")

    page.select_option("#model", "kl:1")  # a shift: both factors, as one sentence
    expect(page.locator("#status")).to_contain_text("kl:1")
    expect(intro).to_contain_text("scaling factor 0.3611, shift factor 0.1159")
    expect(page.locator("#sp-about")).to_contain_text(
        "scaling factor 0.3611, shift factor 0.1159. Its"
    )
    assert visible_steps(page) == ["1", "2"]
    page.close()
    assert problems == [], "\n".join(problems)


def test_a_flat_model_keeps_its_vae_intro_and_numbers_its_sections_in_order(
    explorer: ServiceProcess, browser: Any
) -> None:
    """The shipped VAE: the q(z|x) intro, sections 1..6, figures drawn when it was trained, and
    a legend of the label colours under its latent map (drawn before the map had its own)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    page, problems = watched_page(browser)
    page.goto(explorer.url + "/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#intro-flat")).to_be_visible()
    expect(page.locator("#intro-flat")).to_contain_text("q(z|x)")
    expect(page.locator("#intro-spatial")).to_be_hidden()
    expect(page.locator("#tagline")).to_have_text("what a variational autoencoder learned")
    assert visible_steps(page) == [str(n) for n in range(1, 7)]
    expect(page.locator("#figures-hint")).to_contain_text("when this version was trained")
    image = page.locator(".fig-latent_map img")
    image.scroll_into_view_if_needed()
    expect(image).to_have_js_property("complete", True)
    width, height = image.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert width == height  # the shipped map was drawn square, without a legend column
    legend = page.locator(".fig-latent_map .map-legend")
    expect(legend).to_be_visible()
    expect(legend.locator(".key")).to_have_count(10)
    expect(legend).to_contain_text("colour = label: 0 1 2")
    page.close()
    assert problems == [], "\n".join(problems)
