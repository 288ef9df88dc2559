"""Loaded model versions: load and warm from the repository, resolve `name[:version]`, swap in
new versions without a restart (requests in flight finish on the version they started on), and
keep the loaded set under its cap (`VAE_MAX_LOADED_VERSIONS`, the memory budget): past it the
least recently used version that is no model's default is unloaded, and loads again when a
request names it, as Triton's model control does."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from app import metrics
from app.config import Settings
from app.repository.integrity import VersionDamaged, started
from app.repository.kinds import model_kind
from app.repository.mirror import CachedRepository
from app.repository.store import ModelNotFound, ModelRepository, version_number
from app.serving.adapters import adapter_for
from app.serving.adapters.base import Loading, ModelAdapter, RowCap
from app.serving.batcher import BatcherLabels, DirectRunner, MicroBatcher, Runner
from app.serving.cache.memory import LatentCache, MemoryBackend
from app.serving.inference import InferenceService
from app.serving.loaded import ModelParts
from app.serving.memory import MIB, budget_bytes, version_bytes
from app.serving.packing import PackedGraph
from app.serving.vq import CodePrior
from app.storage.files import InvalidName, check_name

logger = logging.getLogger(__name__)
Stamp = tuple[tuple[str, int, int, int], ...]
Key = tuple[str, int]
PULL_ON_DEMAND_S = 1.0  # a request naming an unseen version pulls the store at most this often
SPARE_S = 2.0
"""A version past the cap that requests used this recently stays, and is looked at again then
(the one a request has just loaded, when the defaults alone fill the cap)."""
QUIET_BEFORE_CLOSE_S = 5.0
"""An unloaded version's runners stop once nothing was queued or computing on them for this
long: requests that resolved it before it was unloaded finish on it."""
QUIET_POLL_S = 0.25


class ModelUnavailable(RuntimeError):
    """The version exists but cannot be loaded (503)."""


@dataclass
class LoadedModel(ModelParts):
    """A loaded version with the adapter of its kind family, which answers its requests."""

    adapter: ModelAdapter = field(init=False, repr=False)

    @classmethod
    def of(
        cls, parts: ModelParts, adapter: type[ModelAdapter], service: InferenceService
    ) -> LoadedModel:
        """The version made of `parts`, answered by its family's `adapter` over `service`."""
        model = cls(**vars(parts))
        model.adapter = adapter(model, service)
        return model


def parse_ref(ref: str) -> tuple[str, int | None]:
    """'name' or 'name:version' -> (name, version or None)."""
    name, _, version = ref.partition(":")
    try:
        check_name(name)
    except InvalidName as error:
        raise ModelNotFound(str(error)) from None
    if not version:
        return name, None
    number = version_number(version)
    if number is None:
        raise ModelNotFound(f"invalid version {version!r} in {ref!r}: use name:number")
    return name, number


class ModelRegistry:
    """Keeps the loaded versions and knows which one answers for each name."""

    def __init__(
        self,
        repository: ModelRepository,
        settings: Settings,
        service: InferenceService | None = None,
    ) -> None:
        self.repository = repository
        self.settings = settings
        # What the adapters of the loaded versions share (the latent cache): the app's lifespan
        # gives its own; without one, a cache in memory.
        self.service = service or InferenceService(
            LatentCache(MemoryBackend(settings.cache_max_entries), settings.cache_ttl_s), settings
        )
        self._loaded: dict[tuple[str, int], LoadedModel] = {}
        self._defaults: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._failed: dict[tuple[str, int], str] = {}
        self._failed_stamps: dict[tuple[str, int], Stamp | None] = {}
        self._root_missing = False
        self._closing: set[asyncio.Future[None]] = set()
        self._loads: dict[tuple[str, int], asyncio.Future[LoadedModel]] = {}
        # The cap on the loaded set: when each version was last used (a tick orders them, the
        # time spares the recent), and what each holds of the memory budget.
        self._used: dict[Key, tuple[int, float]] = {}
        self._ticks = itertools.count()
        self._sizes: dict[Key, int] = {}
        self._budget = budget_bytes(settings)
        self._recheck: asyncio.Task[None] | None = None
        self._unloaded: dict[asyncio.Future[None], LoadedModel] = {}
        self._defaults_past_cap = False
        # An object-store repository: the registry serves the replica's local copy, which each
        # refresh first brings up to the store.
        self.mirror = repository if isinstance(repository, CachedRepository) else None
        self._pulled_at = 0.0

    # ---- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Loads every model's default version, then watches the repository."""
        await self.refresh()
        if self.settings.reload_interval_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll(), name="model-poller")

    async def stop(self) -> None:
        """Stops watching and unloads everything."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for task in list(self._loads.values()):  # loads requests started: nobody waits now
            task.cancel()
        await asyncio.gather(*self._loads.values(), return_exceptions=True)
        if self._recheck is not None:
            self._recheck.cancel()
        unloaded = list(self._unloaded.items())
        for waiting, _ in unloaded:
            waiting.cancel()
        await asyncio.gather(*(waiting for waiting, _ in unloaded), return_exceptions=True)
        for model in [*self._loaded.values(), *(model for _, model in unloaded)]:
            await model.close()
        self._loaded.clear()
        metrics.MODELS_LOADED.set(0)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval_s)
            try:
                await self.refresh()
            except Exception:  # the repository may be briefly unreadable: keep serving
                logger.exception("model repository scan failed; keeping the loaded versions")

    # ---- state ---------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once the default model answers."""
        return self.settings.default_model in self._defaults

    def default_version(self, name: str) -> int | None:
        """The version answering for `name`, if loaded."""
        return self._defaults.get(name)

    def loaded(self) -> list[LoadedModel]:
        """Every loaded version."""
        return list(self._loaded.values())

    def load_error(self, name: str, version: int) -> str | None:
        """Why a version failed to load, if it did."""
        return self._failed.get((name, version))

    def repository_status(self) -> dict[str, Any]:
        """Where the models come from and whether it answers: 'ok', or 'degraded' while an
        object store is unreachable (the replica serves what its cache holds)."""
        if self.mirror is not None:
            return self.mirror.status()
        return {"status": "ok", "source": str(self.repository.root)}

    # ---- loading -------------------------------------------------------------------------
    def _make_runner(
        self,
        graph: PackedGraph | CodePrior,
        name: str,
        which: str,
        max_rows_for: RowCap | None = None,
        batching: bool = True,
    ) -> Runner:
        labels = BatcherLabels(model=name, graph=which)
        s = self.settings
        if which == "prior":
            # Sampling calls the prior once per grid position, one request after another: a
            # batching delay would be paid h*w times, and concurrent samplers rarely share a
            # step (the grids they send grow row by row), so it runs unbatched.
            return DirectRunner(graph.run, labels, s.batches_in_flight)
        if not (s.batching and batching):
            return DirectRunner(graph.run, labels, s.batches_in_flight, max_rows_for)
        return MicroBatcher(
            graph.run,
            labels,
            s.max_batch_size,
            s.max_delay_ms / 1000.0,
            s.max_queue,
            s.batches_in_flight,
            s.dispatch_when_idle,
            max_rows_for,
        )

    def _verify(self, directory: Path, files: dict[str, str]) -> dict[str, str]:
        """The sha256 of `files` as read, each the manifest's (VersionDamaged, counted, if not)."""
        try:
            return self.repository.hashes.verify(
                directory, files, self.settings.file_read_timeout_s
            )
        except VersionDamaged as error:
            metrics.MODEL_VERIFICATION_FAILURES.labels(error.reason).inc()
            raise

    def _load_blocking(self, name: str, version: int) -> LoadedModel:
        """Loads a version by its kind's adapter, which then answers for it, once every file its
        manifest names hashes as the manifest says (VersionDamaged otherwise): the graphs before
        anything reads them, the other files (weights, report figures) alongside the loading.
        The loaded manifest carries the hashes read: the latent cache keys on those."""
        manifest = self.repository.manifest(name, version)
        directory = self.repository.version_dir(name, version)
        graphs = set(model_kind(manifest.kind).graphs)
        rest = {f: h for f, h in manifest.files.items() if f not in graphs}
        others = started(partial(self._verify, directory, rest))  # on another core meanwhile
        verified = self._verify(directory, {f: h for f, h in manifest.files.items() if f in graphs})
        adapter = adapter_for(manifest.kind)

        def runner(
            graph: PackedGraph | CodePrior,
            which: str,
            max_rows_for: RowCap | None = None,
            batching: bool = True,
        ) -> Runner:
            return self._make_runner(graph, name, which, max_rows_for, batching)

        parts = adapter.load(manifest, directory, Loading(self.settings, runner))
        verified |= others.result()  # each file read within its own timeout
        parts.manifest = manifest.model_copy(update={"files": verified})
        return LoadedModel.of(parts, adapter, self.service)

    def _stamp(self, name: str, version: int) -> Stamp | None:
        """A version's files as on disk (name, size, mtime, inode); None when unreadable."""
        directory = self.repository.version_dir(name, version)
        try:
            found = [(".", 0, 0, directory.stat().st_ino)]
            for path in sorted(directory.iterdir()):
                info = path.stat()
                found.append((path.name, info.st_size, info.st_mtime_ns, info.st_ino))
        except OSError:
            return None
        return tuple(found)

    async def _failed_and_unchanged(self, key: tuple[str, int]) -> bool:
        """True for a version that failed to load and whose files have not changed since: it is
        not retried. Files repaired or republished under the same number are loaded again."""
        if key not in self._failed:
            return False
        stamp = await asyncio.to_thread(self._stamp, *key)
        return stamp is None or stamp == self._failed_stamps.get(key)

    async def _load(self, name: str, version: int) -> LoadedModel:
        key = (name, version)
        if key in self._loaded:
            return self._loaded[key]
        stamp = await asyncio.to_thread(self._stamp, name, version)
        try:
            model = await asyncio.to_thread(self._load_blocking, name, version)
        except Exception as error:
            self._failed[key] = str(error)
            self._failed_stamps[key] = stamp
            metrics.MODEL_LOAD_FAILURES.inc()
            raise
        size = await asyncio.to_thread(version_bytes, model.directory)
        model.start()
        self._loaded[key] = model
        self._sizes[key] = size
        self._touch(key)
        self._failed.pop(key, None)
        self._failed_stamps.pop(key, None)
        logger.info("loaded %s:%d on %s", name, version, model.provider)
        self._unload_past_cap(spare=lambda other: other == key)  # sets vae_models_loaded
        return model

    async def refresh(self) -> None:
        """Scans the repository: loads new default versions, unloads deleted ones."""
        async with self._lock:
            await self._pull()
            names = await asyncio.to_thread(self.repository.names)
            for name in names:
                version = await asyncio.to_thread(self.repository.default_version, name)
                if version is None or self._defaults.get(name) == version:
                    continue
                if await self._failed_and_unchanged((name, version)):
                    continue  # a version that failed is not retried until its files change
                try:
                    await self._load(name, version)
                except VersionDamaged as error:  # the reason says it all: no traceback
                    logger.error("refused %s:%d (%s); keeping the version in service",
                                 name, version, error)  # fmt: skip
                    continue
                except Exception:
                    logger.exception(
                        "could not load %s:%d; keeping the version in service", name, version
                    )
                    continue
                self._defaults[name] = version
                metrics.MODEL_INFO.labels(name).set(version)
            if not await self._root_readable():
                return  # renamed away or unmounted: keep serving what is loaded
            await self._drop_missing(set(names))
            self._unload_past_cap(spare=self._recently_used)  # old defaults may be past it now

    async def _pull(self) -> None:
        """Brings an object-store repository's local copy up to the store (nothing to do for a
        directory); while the store is unreachable the copy stays as it is."""
        if self.mirror is None:
            return
        self._pulled_at = time.monotonic()
        try:
            await asyncio.to_thread(self.mirror.sync)
        except OSError:  # the store or the cache's disk: logged by the mirror, status says so
            pass
        except Exception:
            logger.exception("pulling the model repository from %s failed", self.mirror.source)

    async def _pull_if_due(self) -> bool:
        """For a request naming what the local copy lacks: pulls the store now, at most once
        every PULL_ON_DEMAND_S (a flood of unknown names costs no more). True when it did."""
        if self.mirror is None or time.monotonic() - self._pulled_at < PULL_ON_DEMAND_S:
            return False
        await self.refresh()
        return True

    async def _root_readable(self) -> bool:
        """Whether the repository's directory is there; logs when it goes and comes back."""
        readable = await asyncio.to_thread(self.repository.root.is_dir)
        if readable == self._root_missing:
            self._root_missing = not readable
            if readable:
                logger.info("the model repository %s is back", self.repository.root)
            else:
                logger.error(
                    "the model repository %s is gone; serving the loaded versions until it is back",
                    self.repository.root,
                )
        return readable

    async def _missing(self, message: str) -> Exception:
        """404 for a model or version that is not there; 503 while the repository itself is
        unreadable (the version may well exist)."""
        if self._root_missing or not await asyncio.to_thread(self.repository.root.is_dir):
            return ModelUnavailable(f"the model repository is unreadable right now: {message}")
        return ModelNotFound(message)

    def _published(self, name: str, version: int) -> bool:
        """Whether a version's manifest is still on disk (blocking)."""
        return (self.repository.version_dir(name, version) / "manifest.json").is_file()

    async def _still_gone(self, keys: list[tuple[str, int]], names: list[str]) -> bool:
        """A second look before unloading: the repository's directory is there now and the
        versions and names are still missing. (A scan that raced with the directory going
        away, or coming back, saw them missing only because the whole directory was.)"""
        if not await asyncio.to_thread(self.repository.root.is_dir):
            return False
        now = set(await asyncio.to_thread(self.repository.names))
        for name, version in keys:
            if await asyncio.to_thread(self._published, name, version):
                return False
        return not any(name in now for name in names)

    async def _drop_missing(self, names: set[str]) -> None:
        gone = [
            key for key in list(self._loaded) if not await asyncio.to_thread(self._published, *key)
        ]
        stale = [name for name in self._defaults if name not in names]
        if (gone or stale) and not await self._still_gone(gone, stale):
            return
        for key in gone:
            model = self._loaded.pop(key)
            self._used.pop(key, None)
            self._sizes.pop(key, None)
            if self._defaults.get(key[0]) == key[1]:
                self._defaults.pop(key[0])
            # Let requests already holding this version finish before its runners stop.
            self._close_later(model)
        for name in stale:
            self._defaults.pop(name, None)
        metrics.MODELS_LOADED.set(len(self._loaded))

    def _close_later(self, model: LoadedModel, delay: float = 30.0) -> None:
        """Stops a version's runners once requests already holding it have finished."""

        def close() -> None:
            task = asyncio.ensure_future(model.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

        asyncio.get_running_loop().call_later(delay, close)

    async def _pulled_version(self, name: str, version: int) -> bool:
        """Whether pulling the store now (when due) brought `name:version` into the copy."""
        return await self._pull_if_due() and version in await asyncio.to_thread(
            self.repository.versions, name
        )

    async def resolve(self, ref: str | None) -> LoadedModel:
        """The loaded version for 'name' or 'name:version' (the default model when None)."""
        name, version = parse_ref(ref or self.settings.default_model)
        if version is None:
            if self.mirror is not None and name not in self._defaults:
                await self._pull_if_due()  # the store may have it; asked at most so often
            elif name not in self._defaults and await asyncio.to_thread(
                (self.repository.root / name).is_dir
            ):
                await self.refresh()  # published since the last scan: no need to wait for it
            version = self._defaults.get(name)
            if version is None:
                raise await self._missing(f"no model named {name!r}; GET /models lists them")
        key = (name, version)
        if key in self._loaded:
            self._touch(key)
            return self._loaded[key]
        if version not in await asyncio.to_thread(
            self.repository.versions, name
        ) and not await self._pulled_version(name, version):
            raise await self._missing(f"model {name!r} has no version {version}")
        if await self._failed_and_unchanged(key):
            raise ModelUnavailable(f"{name}:{version} failed to load: {self._failed[key]}")
        try:
            # the load goes on past the request's deadline; a later request finds its outcome
            return await asyncio.wait_for(
                asyncio.shield(self._loading(name, version)), self.settings.request_timeout_s
            )
        except TimeoutError:
            raise ModelUnavailable(f"{name}:{version} is still loading; try again") from None

    async def load(self, name: str, version: int) -> LoadedModel:
        """Loads a published version and waits for it however long that takes (an admin making
        it the default); ModelUnavailable when it cannot load, with `load_error` saying why."""
        key = (name, version)
        if key in self._loaded:
            self._touch(key)
            return self._loaded[key]
        if await self._failed_and_unchanged(key):
            raise ModelUnavailable(f"{name}:{version} failed to load: {self._failed[key]}")
        return await asyncio.shield(self._loading(name, version))

    def _loading(self, name: str, version: int) -> asyncio.Future[LoadedModel]:
        """The one load of `name:version` under way for requests, started if none is."""
        key = (name, version)
        task = self._loads.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load_for_request(name, version))
            self._loads[key] = task
            task.add_done_callback(lambda done: self._load_ended(key, done))
        return task

    def _load_ended(self, key: tuple[str, int], task: asyncio.Future[LoadedModel]) -> None:
        self._loads.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: the requests that waited for it have their answer

    async def _load_for_request(self, name: str, version: int) -> LoadedModel:
        async with self._lock:
            with contextlib.suppress(KeyError):
                return self._loaded[(name, version)]
            try:
                return await self._load(name, version)
            except Exception as error:
                raise ModelUnavailable(f"{name}:{version} failed to load: {error}") from None

    # ---- the cap on the loaded set -----------------------------------------------------------
    def _touch(self, key: Key) -> None:
        """Records a use of a loaded version (a request resolving it, or its load)."""
        self._used[key] = (next(self._ticks), time.monotonic())

    def _recently_used(self, key: Key) -> bool:
        used = self._used.get(key)
        return used is not None and time.monotonic() - used[1] < SPARE_S

    def loaded_bytes(self) -> int:
        """What the loaded versions hold, estimated (app.serving.memory.version_bytes)."""
        return sum(self._sizes.get(key, 0) for key in self._loaded)

    def _past_cap(self) -> str | None:
        """Why the loaded set is past its cap, or None when it is not."""
        cap = self.settings.max_loaded_versions
        if cap is not None and len(self._loaded) > cap:
            return f"{len(self._loaded)} loaded, VAE_MAX_LOADED_VERSIONS={cap}"
        held = self.loaded_bytes()
        if held > self._budget:
            return (
                f"{held / MIB:.0f} MB loaded, past the memory budget of "
                f"{self._budget / MIB:.0f} MB (VAE_MEMORY_BUDGET_MB)"
            )
        return None

    def _unload_past_cap(self, spare: Callable[[Key], bool]) -> bool:
        """While the loaded set is past its cap, unloads versions least recently used first.
        Default versions always stay; so, for now, do those `spare` keeps (the version a
        request has just loaded), looked at again every SPARE_S. Runs under the lock; True
        while spared versions keep the set past its cap."""
        defaults = set(self._defaults.items())
        spared = False
        for key in sorted(self._loaded, key=lambda loaded: self._used.get(loaded, (-1, 0.0))):
            why = self._past_cap()
            if why is None:
                break
            if key in defaults:
                continue
            if spare(key):
                spared = True
                continue
            self._unload(key, why)
        metrics.MODELS_LOADED.set(len(self._loaded))
        why = self._past_cap()
        if why is not None and spared:
            self._recheck_later()
        elif why is not None and not self._defaults_past_cap:
            logger.warning("the default versions alone are past the cap (%s): they stay", why)
        self._defaults_past_cap = why is not None and not spared
        return why is not None and spared

    def _unload(self, key: Key, why: str) -> None:
        """Takes a version out of the loaded set; its runners stop once requests that resolved
        it before have finished (nothing queued or computing on them for a while)."""
        model = self._loaded.pop(key)
        self._used.pop(key, None)
        self._sizes.pop(key, None)
        logger.info(
            "unloaded %s:%d, the least recently used version (%s); a request naming it loads it "
            "again",
            *key,
            why,
        )
        waiting = asyncio.ensure_future(self._close_when_quiet(model))
        self._unloaded[waiting] = model
        waiting.add_done_callback(lambda done: self._unloaded.pop(done, None))

    def _recheck_later(self) -> None:
        if self._recheck is None or self._recheck.done():
            self._recheck = asyncio.ensure_future(self._recheck_cap())

    async def _recheck_cap(self) -> None:
        """Looks again at spared versions every SPARE_S while the loaded set is past its cap."""
        spared = True
        while spared:
            await asyncio.sleep(SPARE_S)
            async with self._lock:
                spared = self._unload_past_cap(spare=self._recently_used)

    @staticmethod
    async def _close_when_quiet(model: LoadedModel) -> None:
        """Stops an unloaded version's runners once nothing was queued or computing on them
        for QUIET_BEFORE_CLOSE_S."""
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < QUIET_BEFORE_CLOSE_S:
            await asyncio.sleep(QUIET_POLL_S)
            if model.busy:  # its exact graphs' runners too, and one being opened
                quiet_since = time.monotonic()
        await model.close()
