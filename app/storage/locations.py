"""Where a repository lives: a local directory (a Path) or an object store (`s3://bucket/prefix`).

`VAE_MODELS_DIR` and `VAE_DATA_DIR` take either; `to_location` tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator

SCHEME = "s3://"


@dataclass(frozen=True)
class ObjectUrl:
    """`s3://bucket/prefix`: a bucket and a key prefix in it (no leading or trailing '/')."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> ObjectUrl:
        """Parses `s3://bucket[/prefix]`; ValueError when it is not one."""
        if not text.startswith(SCHEME):
            raise ValueError(f"{text!r} is not an s3://bucket/prefix URL")
        bucket, _, prefix = text[len(SCHEME) :].partition("/")
        if not bucket:
            raise ValueError(f"{text!r} names no bucket: use s3://bucket/prefix")
        return cls(bucket, prefix.strip("/"))

    def child(self, name: str) -> ObjectUrl:
        """The URL of `name` under this prefix."""
        return ObjectUrl(self.bucket, f"{self.prefix}/{name}".strip("/"))

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}".rstrip("/")


def to_location(value: Any) -> Path | ObjectUrl:
    """A setting's value as a Path, or as an ObjectUrl when it starts with s3://."""
    if isinstance(value, Path | ObjectUrl):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a directory or an s3:// URL, got {value!r}")
    return ObjectUrl.parse(value) if value.startswith(SCHEME) else Path(value)


Location = Annotated[Path | ObjectUrl, PlainValidator(to_location), PlainSerializer(str)]
"""A settings type: a directory, or an object-store URL."""
