"""Video bodies on the routes of an image model, in process (the shipped flat MNIST model): a
video file (any video/* Content-Type) reaches the model's adapter, which refuses it by name
(422), and /decode, which takes latents, refuses it as a media type (415); never a 500."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from app.main import create_app
from tests.support.in_process import serving, settings_for

VIDEO = b"\x00\x00\x00\x20ftypisom" + bytes(64)  # what the body holds is not read


def _post(models_dir: Path, tmp_path: Path, path: str, content_type: str) -> httpx.Response:
    app = create_app(settings_for(models_dir, tmp_path / "data"))

    async def scenario() -> httpx.Response:
        async with serving(app) as http:
            return await http.post(path, content=VIDEO, headers={"content-type": content_type})

    return asyncio.run(scenario())


def test_an_image_model_refuses_a_video_to_encode(models_dir: Path, tmp_path: Path) -> None:
    answer = _post(models_dir, tmp_path, "/encode", "video/webm")
    assert answer.status_code == 422
    assert "takes images, not a video" in answer.json()["message"]


def test_decode_refuses_a_video_body(models_dir: Path, tmp_path: Path) -> None:
    answer = _post(models_dir, tmp_path, "/decode", "video/mp4")
    assert answer.status_code == 415
    assert "/decode takes latents, not a video" in answer.json()["message"]


def test_other_media_types_still_name_what_is_taken(models_dir: Path, tmp_path: Path) -> None:
    answer = _post(models_dir, tmp_path, "/encode", "text/plain")
    assert answer.status_code == 415
    assert "video/mp4" in answer.json()["message"]
