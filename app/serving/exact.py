"""A version's fp32 twin of a graph chosen at a lower precision, opened on demand: image
models' runners (`loaded.ExactRunner`) and video models' directions (`video.graphs`) share it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from app.runtime.engines import EngineSpec


class VersionClosed(RuntimeError):
    """The version was closed (unloaded) before its exact graph opened."""


class Opened(Protocol):
    """What an exact twin opens: something started, stopped and busy (a runner, or a video
    model's direction of graphs)."""

    @property
    def busy(self) -> bool: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


OpenedT = TypeVar("OpenedT", bound=Opened)


class ExactTwin(Generic[OpenedT]):
    """The fp32 graph(s) of one of a version's graphs whose chosen precision is lower, and what
    runs them, opened by the first request that asks for exact results (diffusers' remote VAE
    protocol promises what the local fp32 model computes): only those who use it pay its
    memory. A lock makes two first requests open it once; the version's close stops it, and one
    that finishes opening after the close is not started."""

    def __init__(self, spec: EngineSpec, open_twin: Callable[[], OpenedT]) -> None:
        self.spec = spec
        self._open = open_twin
        self._opened: OpenedT | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def opened(self) -> OpenedT | None:
        """The twin, once opened (None before)."""
        return self._opened

    @property
    def busy(self) -> bool:
        """Whether a request is opening the twin, or queued or computing on it."""
        return self._lock.locked() or (self._opened is not None and self._opened.busy)

    async def get(self) -> OpenedT:
        """The started twin, opened (off the event loop) on the first call; VersionClosed once
        the version is closed."""
        if self._opened is not None and not self._closed:
            return self._opened
        async with self._lock:
            if self._closed:
                raise VersionClosed("the model was unloaded")
            if self._opened is None:
                opened = await asyncio.to_thread(self._open)
                if self._closed:
                    await opened.stop()
                    raise VersionClosed("the model was unloaded")
                opened.start()
                self._opened = opened
            return self._opened

    async def stop(self) -> None:
        """Stops the twin, if opened; it opens no more."""
        self._closed = True
        if self._opened is not None:
            await self._opened.stop()
