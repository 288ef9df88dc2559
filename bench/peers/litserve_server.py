"""LitServe serving decoder.onnx with its batching (`max_batch_size`, `batch_timeout`).

Route: POST /predict with {"latents": [[...]]} (one latent a request: LitServe batches requests,
not rows) -> {"images": [b64 PNG]}, rendered in `encode_response` in the inference worker.

Run inside bench/.venvs/litserve: `python -m bench.peers.litserve_server --model M --port P`.
"""

from __future__ import annotations

import litserve as ls
import numpy as np

from app.serving.imaging import encode_png_base64
from bench.peers.common import PeerDecoder, peer_arguments


class DecoderAPI(ls.LitAPI):
    """decode_request -> batch (stack) -> predict (one ORT call) -> unbatch -> encode_response."""

    def __init__(self, model: str, threads: int, max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.model_path = model
        self.threads = threads

    def setup(self, device: str) -> None:
        """Loads the session in the inference worker."""
        self.decoder = PeerDecoder(self.model_path, self.threads)

    def decode_request(self, request):  # type: ignore[no-untyped-def]
        """One latent [D] from {"latents": [[...]]}.

        `request` stays unannotated: LitServe then hands over the parsed JSON body without a
        pydantic model (its fastest path), where an annotation would make it a query parameter.
        """
        return np.asarray(request["latents"], dtype=np.float32).reshape(-1)

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Latents of the batched requests -> [N,D]."""
        return np.stack(inputs)

    def predict(self, z: np.ndarray) -> np.ndarray:
        """One ONNX Runtime call for the whole batch."""
        return self.decoder.images(z)

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        """[N,C,H,W] -> one image a request."""
        return list(output)

    def encode_response(self, image: np.ndarray) -> dict[str, list[str]]:
        """The image as a base64 PNG, in the shape of the service's /decode answer."""
        return {"images": [encode_png_base64(image)]}


def main() -> None:
    """Starts one API server and one inference worker on the CPU."""
    parser = peer_arguments(__doc__)
    parser.add_argument("--batch-timeout", type=float, default=0.002, help="seconds")
    args = parser.parse_args()
    api = DecoderAPI(args.model, args.threads, args.max_batch_size, args.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=60)
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
    )


if __name__ == "__main__":
    main()
