"""The numpy array types every package passes around: images and latents in float32, VQ code
grids in int64."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
CodeArray = NDArray[np.int64]
