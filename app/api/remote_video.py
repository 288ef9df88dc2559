"""diffusers' `remote_decode` for a video model: what each `output_type` reads back.

- `mp4` (Accept text/plain): the clip's mp4 bytes (fragmented H.264, streamed as it is decoded;
  one clip).
- `pt`: the decoder's output [N, C, F, H, W] in the model's range, in the latents' dtype (what
  `VideoProcessor.postprocess_video` takes); with `partial_postprocess`, uint8 frames
  [F, H, W, C] ([N*F, H, W, C] for several clips), which diffusers turns into PIL images.
- `pil` with a processor (Accept tensor/binary): frames [F, C, H, W] in [0, 1] ([N*F, ...]),
  which diffusers permutes to channels last and scales to 0..255 itself. Without a processor
  diffusers would open the answer as one image file, which a clip is not: refused."""

from __future__ import annotations

import asyncio

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from app.api.negotiation import query_flag
from app.api.rendering import raw_response
from app.api.video_rendering import (
    check_one_clip,
    mp4_response,
    started,
    uint8_frames,
    video_headers,
    whole_output,
)
from app.serving.adapters.errors import InvalidRequest
from app.serving.adapters.results import DecodedVideo
from app.serving.registry import LoadedModel

OUTPUT_TYPES = ("mp4", "pt", "pil")


async def remote_video_response(
    model: LoadedModel, video: DecodedVideo, output_type: str, dtype: str, request: Request
) -> Response:
    """A video model's answer to `remote_decode` as its `output_type` asks (`dtype`: the
    latents', which float answers keep)."""
    if output_type not in OUTPUT_TYPES:
        raise InvalidRequest(f"output_type {output_type!r}: a video model gives mp4, pt or pil")
    if output_type == "pil" and request.headers.get("accept", "").startswith("image/"):
        raise InvalidRequest(
            "output_type pil for a video model needs a processor (pass processor=VideoProcessor"
            "()): the frames come back as a tensor; or use output_type mp4 or pt"
        )
    if output_type == "mp4":
        check_one_clip(video, "output_type pt")
    headers = video_headers(model, video)
    feed, first = await started(video)
    if output_type == "mp4":
        return mp4_response(model, video, feed, first, headers)
    output = await whole_output(feed, first)
    if output_type == "pil":
        return await asyncio.to_thread(_frames, video.unit_frames(output), dtype, headers)
    if query_flag(request, "partial_postprocess"):
        return await asyncio.to_thread(_frames, uint8_frames(video, output), "uint8", headers)
    return await asyncio.to_thread(raw_response, output, dtype, headers)


def _frames(frames: np.ndarray, dtype: str, headers: dict[str, str]) -> Response:
    """Clips' frames [N, F, ...] as one raw tensor of frames [N*F, ...]."""
    return raw_response(frames.reshape(-1, *frames.shape[2:]), dtype, headers)
