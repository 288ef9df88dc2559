"""The sizes a spatial model (kind `autoencoder`) takes: image sides (fixed, or free in multiples
of its downscale factor from a minimum), latent grids [C,h,w], and the pixels one image and one
request may carry (VAE_MAX_PIXELS, VAE_MAX_REQUEST_PIXELS)."""

from __future__ import annotations

from app.config import Settings
from app.repository.manifest import Manifest, SpatialSpec
from app.serving.adapters.errors import ImageSizeError, TooManyPixels


def spatial_spec(manifest: Manifest) -> SpatialSpec:
    """The manifest's spatial latent; ImageSizeError for a model without one."""
    if manifest.spatial is None:
        raise ImageSizeError(f"model {manifest.name} has no spatial latent")
    return manifest.spatial


def check_image_size(manifest: Manifest, height: int, width: int, max_pixels: int) -> None:
    """ImageSizeError unless the model takes an image height x width."""
    spec = spatial_spec(manifest)
    if not spec.free_size:
        if (height, width) != (manifest.image.height, manifest.image.width):
            raise ImageSizeError(
                f"model {manifest.name} takes {manifest.image.width}x{manifest.image.height} "
                f"images only, got {width}x{height}"
            )
        return
    if height % spec.downscale or width % spec.downscale:
        raise ImageSizeError(
            f"image sides must be multiples of {spec.downscale} for model {manifest.name}, "
            f"got {width}x{height}"
        )
    if min(height, width) < spec.min_size:
        raise ImageSizeError(
            f"model {manifest.name} takes images of at least {spec.min_size} pixels a side, "
            f"got {width}x{height}"
        )
    if height * width > max_pixels:
        raise ImageSizeError(
            f"{width}x{height} is more than the {max_pixels} pixels this server takes "
            "(VAE_MAX_PIXELS)"
        )


def check_request_pixels(pixels: int, limit: int) -> None:
    """TooManyPixels when a request's images, together `pixels`, pass `limit`."""
    if pixels > limit:
        raise TooManyPixels(
            f"this request's images are {pixels} pixels in all, more than the {limit} one "
            "request may carry (VAE_MAX_REQUEST_PIXELS): send fewer at a time"
        )


def check_images(manifest: Manifest, shape: tuple[int, ...], settings: Settings) -> None:
    """ImageSizeError unless an image batch [N,C,H,W] is one the model takes, and not more
    pixels than a request may carry."""
    channels = manifest.image.channels
    if len(shape) != 4 or shape[1] != channels:
        raise ImageSizeError(
            f"images for model {manifest.name} are [N, {channels}, H, W], got {list(shape)}"
        )
    check_image_size(manifest, shape[2], shape[3], settings.max_pixels)
    check_request_pixels(shape[0] * shape[2] * shape[3], settings.max_request_pixels)


def check_latent_shape(manifest: Manifest, shape: tuple[int, ...], settings: Settings) -> None:
    """ImageSizeError unless a latent batch [N,C,h,w] decodes to images the model gives, and
    not more pixels than a request may carry."""
    spec = spatial_spec(manifest)
    if len(shape) != 4 or shape[1] != spec.latent_channels:
        raise ImageSizeError(
            f"latents for model {manifest.name} are [N, {spec.latent_channels}, h, w], "
            f"got {list(shape)}"
        )
    height, width = shape[2] * spec.downscale, shape[3] * spec.downscale
    check_image_size(manifest, height, width, settings.max_pixels)
    check_request_pixels(shape[0] * height * width, settings.max_request_pixels)
