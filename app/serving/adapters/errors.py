"""What a model's adapter refuses a request with. Each is a domain error: `app/api/errors.py`
gives it its HTTP status and `error` code (the status is in each docstring)."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """A request this model cannot take as it is asked: a field that does not apply, a format
    it does not give, a body it does not read, nothing to answer (422)."""


class InvalidLatent(ValueError):
    """Latents of the wrong shape, not numbers, or not finite; or latents the decoder
    overflows on (422)."""


class InvalidCodes(ValueError):
    """Code grids a VQ-VAE cannot take, or codes sent to a model without a codebook (422)."""


class InvalidLabel(ValueError):
    """A label a conditional model needs and did not get, or one a model does not take (422)."""


class TooLarge(ValueError):
    """More items (images, latents, samples, steps) than one request may ask for (413)."""


class LatentsExpected(ValueError):
    """An image file sent where latents are expected (415)."""


class ImageSizeError(ValueError):
    """An image or latent of a size the model does not take (422)."""


class TooManyPixels(ImageSizeError):
    """A request whose images together pass VAE_MAX_REQUEST_PIXELS (413)."""


class PriorNotMeaningful(ValueError):
    """Decoding draws from N(0, I) would not give images for this model (422)."""


def check_count(count: int, limit: int, what: str) -> None:
    """At least one, at most `limit` items in one request (TooLarge past the limit)."""
    if count < 1:
        raise InvalidRequest(f"send at least one {what}")
    if count > limit:
        raise TooLarge(f"at most {limit} {what}s in one request, got {count}")
