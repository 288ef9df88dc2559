"""One adapter class per family of model kinds, and the table that picks it for a kind: a new
kind is a row here (and in `app/repository/kinds.py`), and a new family one adapter module. An
adapter loads its kind's graphs (`load`, called by the registry) and answers for the version.

| family | kinds | module |
| --- | --- | --- |
| flat Gaussian | vae, cvae | `gaussian` |
| ladder | hvae | `ladder` |
| VQ | vqvae | `codes` |
| spatial autoencoder | autoencoder | `spatial` |
| video autoencoder | video_autoencoder | `video` |

The routes call `model.adapter.encode / decode / sample / interpolate` with the typed calls of
`requests` and render the typed results of `results`; what a family refuses is one of `errors`.
"""

from __future__ import annotations

from app.serving.adapters.base import ModelAdapter
from app.serving.adapters.codes import CodeAdapter
from app.serving.adapters.gaussian import GaussianAdapter
from app.serving.adapters.ladder import LadderAdapter
from app.serving.adapters.spatial import SpatialAdapter
from app.serving.adapters.video import VideoAdapter

ADAPTERS: dict[str, type[ModelAdapter]] = {
    "vae": GaussianAdapter,
    "cvae": GaussianAdapter,
    "hvae": LadderAdapter,
    "vqvae": CodeAdapter,
    "autoencoder": SpatialAdapter,
    "video_autoencoder": VideoAdapter,
}


def adapter_for(kind: str) -> type[ModelAdapter]:
    """The adapter class serving a kind; KeyError names the kinds served."""
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise KeyError(f"no adapter serves kind {kind!r}: one of {', '.join(ADAPTERS)}") from None
