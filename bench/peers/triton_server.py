"""NVIDIA Triton (through PyTriton) serving decoder.onnx with Triton's dynamic batcher.

Route: POST /v2/models/decoder/infer (Open Inference Protocol JSON), input `z` FP32 [N,D],
output `images` BYTES [N,1]: base64 PNGs, rendered inside the batched callable.

Run inside bench/.venvs/triton: `python -m bench.peers.triton_server --model M --port P`.
"""

from __future__ import annotations

import logging

import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from bench.peers.common import PeerDecoder, peer_arguments


def main() -> None:
    """Binds the decoder and serves until killed."""
    parser = peer_arguments(__doc__)
    parser.add_argument("--max-delay-us", type=int, default=2000, help="max queue delay")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    decoder = PeerDecoder(args.model, args.threads)

    @batch
    def infer(z: np.ndarray) -> dict[str, np.ndarray]:
        encoded = [text.encode("ascii") for text in decoder.pngs(z)]
        return {"images": np.array(encoded, dtype=np.object_).reshape(-1, 1)}

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
            inputs=[Tensor(name="z", dtype=np.float32, shape=(decoder.latent_dim,))],
            outputs=[Tensor(name="images", dtype=bytes, shape=(1,))],
            config=ModelConfig(
                max_batch_size=args.max_batch_size,
                batcher=DynamicBatcher(max_queue_delay_microseconds=args.max_delay_us),
            ),
            strict=False,
        )
        triton.serve()


if __name__ == "__main__":
    main()
