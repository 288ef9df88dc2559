"""NVIDIA Triton (through PyTriton) serving a spatial decoder.onnx (latents [N,C,h,w] -> images)
with Triton's dynamic batcher, for `bench.spatial`.

Route: POST /v2/models/decoder/infer (Open Inference Protocol, binary tensor extension), input `z`
FP32 [N,C,h,w], output `images` UINT8 [N,H,W,3] (the service's `format=raw`: the same
postprocessing, [-1,1] -> uint8).

Run inside the triton virtualenv: `python -m bench.peers.triton_spatial --model M --port P`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import Tensor

from app.runtime.sessions import load_graph
from bench.peers.triton_server import serve, triton_arguments


def main() -> None:
    """Binds the decoder and serves until killed."""
    args = triton_arguments(__doc__)
    graph = load_graph(Path(args.model), args.threads)
    channels = int(graph.session.get_inputs()[0].shape[1])

    @batch
    def infer(z: np.ndarray) -> dict[str, np.ndarray]:
        images = next(iter(graph.run(np.ascontiguousarray(z, np.float32)).values()))
        pixels = np.clip(np.rint((images / 2 + 0.5) * 255), 0, 255).astype(np.uint8)
        return {"images": np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))}

    serve(
        args,
        infer,
        inputs=[Tensor(name="z", dtype=np.float32, shape=(channels, -1, -1))],
        outputs=[Tensor(name="images", dtype=np.uint8, shape=(-1, -1, 3))],
    )


if __name__ == "__main__":
    main()
