"""GET /models, GET /models/{name}, report figures, and the admin routes that change defaults."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from app.api.admin import AdminDep
from app.api.deps import StateDep
from app.api.errors import DefaultVersionInUse, NotFound, VersionLoadFailed, error_responses
from app.api.responses import json_response
from app.evaluation.report import FIGURES
from app.repository.kinds import model_kind
from app.repository.store import ModelNotFound
from app.serving.registry import LoadedModel, ModelUnavailable
from app.storage.files import CorruptStoredFile

router = APIRouter(prefix="/models", tags=["models"])
logger = logging.getLogger(__name__)

_ADMIN = (400, 401, 403, 404, 409, 413, 422, 503)


def _engines(model: LoadedModel) -> dict[str, Any]:
    """Per graph: the engine, precision and device chosen, why, the chosen one's quality gate
    (None for fp32, the reference) and every candidate's trial; `exact`, for a graph chosen
    below fp32, the fp32 twin the /remote routes run (None otherwise)."""
    described = {}
    exact = model.exact_engines
    for which, choice in model.engines.items():
        chosen = next((trial for trial in choice.trials if trial.spec == choice.spec), None)
        gate = chosen.gate if chosen is not None else None
        described[which] = {
            **choice.as_json(),
            "gate": gate.as_json() if gate else None,
            "exact": exact.get(which),
        }
    return described


async def _describe(state: StateDep, name: str) -> dict[str, Any]:
    repository = state.registry.repository
    versions = await asyncio.to_thread(repository.versions, name)
    if not versions:
        raise ModelNotFound(f"no model named {name!r}; GET /models lists them")
    loaded = {(m.name, m.version): m for m in state.registry.loaded()}
    described = []
    for version in versions:
        try:
            manifest = await asyncio.to_thread(repository.manifest, name, version)
        except (ModelNotFound, OSError):
            continue  # deleted or being written while we looked
        except CorruptStoredFile as error:
            logger.error("left out of the description: %s", error)
            continue
        model = loaded.get((name, version))
        described.append(
            {
                "version": version,
                "loaded": model is not None,
                "provider": model.provider if model else None,
                "engine": _engines(model) if model else None,
                "load_error": state.registry.load_error(name, version),
                "kind": model_kind(manifest.kind).describe(),
                "manifest": manifest.model_dump(mode="json"),
            }
        )
    return {
        "name": name,
        "default_version": state.registry.default_version(name)
        or await asyncio.to_thread(repository.default_version, name),
        "versions": described,
    }


@router.get("")
async def list_models(state: StateDep) -> Response:
    """Every model with its versions and manifests, and which model answers by default."""
    names = await asyncio.to_thread(state.registry.repository.names)
    models = [await _describe(state, name) for name in names]
    return json_response({"default": state.settings.default_model, "models": models})


@router.get("/{name}", responses=error_responses(404, 422))
async def get_model(name: str, state: StateDep) -> Response:
    """One model: its versions, their manifests, and the execution provider in use."""
    return json_response(await _describe(state, name))


@router.get(
    "/{name}/versions/{version}/report/{figure}.png",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}, **error_responses(404, 422)},
)
async def report_figure(name: str, version: int, figure: str, state: StateDep) -> FileResponse:
    """A report figure: reconstructions, samples, interpolation or latent_map."""
    if figure not in FIGURES:
        raise NotFound(f"no figure {figure!r}; there are {', '.join(FIGURES)}")
    path = state.registry.repository.version_dir(name, version) / "report" / f"{figure}.png"
    if not await asyncio.to_thread(path.is_file):
        raise ModelNotFound(f"model {name} has no version {version} with a {figure} figure")
    return FileResponse(path, media_type="image/png")


class DefaultVersion(BaseModel):
    """POST /models/{name}/default: the version that answers from now on."""

    model_config = ConfigDict(extra="forbid", strict=True)

    version: int


@router.post("/{name}/default", responses=error_responses(*_ADMIN, 415))
async def set_default(name: str, body: DefaultVersion, state: StateDep, _: AdminDep) -> Response:
    """Makes `{"version": V}` the version that answers for `name` (admin)."""
    # A transaction: the version is loaded first and DEFAULT written only once it has loaded,
    # so a version that cannot load never becomes the default a restart would find.
    version = body.version
    registry = state.registry
    await registry.refresh()  # a replica's copy of an object store may lack the version yet
    if version not in await asyncio.to_thread(registry.repository.versions, name):
        raise ModelNotFound(f"model {name} has no version {version}")
    try:
        await registry.load(name, version)
    except ModelUnavailable:
        error = registry.load_error(name, version)
        if error is None:
            raise  # the repository unreadable right now, not the version (503)
        raise VersionLoadFailed(f"version {version} failed to load: {error}") from None
    await asyncio.to_thread(registry.repository.set_default, name, version)
    await registry.refresh()
    if registry.default_version(name) != version:
        raise VersionLoadFailed(
            f"version {version} failed to load: {registry.load_error(name, version)}"
        )
    return json_response(await _describe(state, name))


@router.delete("/{name}/versions/{version}", status_code=204, responses=error_responses(*_ADMIN))
async def delete_version(name: str, version: int, state: StateDep, _: AdminDep) -> Response:
    """Deletes a version (admin). The default version cannot be deleted while others exist."""
    repository = state.registry.repository
    # a replica's copy of an object store may be behind it (another replica moved DEFAULT)
    await state.registry.refresh()
    versions = await asyncio.to_thread(repository.versions, name)
    if version not in versions:
        raise ModelNotFound(f"model {name} has no version {version}")
    default = await asyncio.to_thread(repository.default_version, name)
    if version == default and len(versions) > 1:
        raise DefaultVersionInUse("make another version the default before deleting this one")
    await asyncio.to_thread(repository.delete_version, name, version)
    await state.registry.refresh()
    return Response(status_code=204)
