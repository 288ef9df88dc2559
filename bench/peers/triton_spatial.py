"""NVIDIA Triton (through PyTriton) serving a spatial decoder.onnx (latents [N,C,h,w] -> images)
with Triton's dynamic batcher, for `bench.spatial`.

Route: POST /v2/models/decoder/infer (Open Inference Protocol, binary tensor extension), input `z`
FP32 [N,C,h,w], output `images` UINT8 [N,H,W,3] (the service's `format=raw`: the same
postprocessing, [-1,1] -> uint8).

Run inside the triton virtualenv: `python -m bench.peers.triton_spatial --model M --port P`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from app.serving.runtime import load_graph
from bench.peers.common import peer_arguments


def main() -> None:
    """Binds the decoder and serves until killed."""
    parser = peer_arguments(__doc__)
    parser.add_argument("--max-delay-us", type=int, default=2000, help="max queue delay")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    graph = load_graph(Path(args.model), args.threads)
    channels = int(graph.session.get_inputs()[0].shape[1])

    @batch
    def infer(z: np.ndarray) -> dict[str, np.ndarray]:
        images = next(iter(graph.run(np.ascontiguousarray(z, np.float32)).values()))
        pixels = np.clip(np.rint((images / 2 + 0.5) * 255), 0, 255).astype(np.uint8)
        return {"images": np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))}

    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.port,
        allow_grpc=False,
        allow_metrics=False,
        log_verbose=0,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="decoder",
            infer_func=infer,
            inputs=[Tensor(name="z", dtype=np.float32, shape=(channels, -1, -1))],
            outputs=[Tensor(name="images", dtype=np.uint8, shape=(-1, -1, 3))],
            config=ModelConfig(
                max_batch_size=args.max_batch_size,
                batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_delay_us),
            ),
            strict=False,
        )
        triton.serve()


if __name__ == "__main__":
    main()
