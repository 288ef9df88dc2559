"""NVIDIA Triton (through PyTriton) serving decoder.onnx with Triton's dynamic batcher.

Route: POST /v2/models/decoder/infer (Open Inference Protocol JSON), input `z` FP32 [N,D],
output `images` BYTES [N,1]: base64 PNGs, rendered inside the batched callable.

Run inside bench/.venvs/triton: `python -m bench.peers.triton_server --model M --port P`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from bench.peers.common import PeerDecoder, peer_arguments


def triton_arguments(description: str | None) -> argparse.Namespace:
    """The peer options plus Triton's batching delay, parsed; logging set as every Triton peer sets it."""
    parser = peer_arguments(description)
    parser.add_argument("--max-delay-us", type=int, default=2000, help="max queue delay")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return args


def serve(
    args: argparse.Namespace,
    infer: Callable[..., dict[str, np.ndarray]],
    inputs: list[Tensor],
    outputs: list[Tensor],
) -> None:
    """Binds `infer` as model `decoder` behind Triton's dynamic batcher (HTTP only) and serves
    until killed."""
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
            inputs=inputs,
            outputs=outputs,
            config=ModelConfig(
                max_batch_size=args.max_batch_size,
                batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_delay_us),
            ),
            strict=False,
        )
        triton.serve()


def main() -> None:
    """Binds the decoder and serves until killed."""
    args = triton_arguments(__doc__)
    decoder = PeerDecoder(args.model, args.threads)

    @batch
    def infer(z: np.ndarray) -> dict[str, np.ndarray]:
        encoded = [text.encode("ascii") for text in decoder.pngs(z)]
        return {"images": np.array(encoded, dtype=np.object_).reshape(-1, 1)}

    serve(
        args,
        infer,
        inputs=[Tensor(name="z", dtype=np.float32, shape=(decoder.latent_dim,))],
        outputs=[Tensor(name="images", dtype=bytes, shape=(1,))],
    )


if __name__ == "__main__":
    main()
