"""The `vae` command: serve, train, evaluate."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from app.training.hooks import TrainProgress

# Plain click help: typer's rich panels print a "<bool>" placeholder beside every flag with
# click 8.5 (whose flags' metavar is no longer "BOOLEAN", the value typer hides).
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Train VAEs and serve them over HTTP.",
)


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, and the service's own INFO lines (a version loaded, unloaded, a job
    settled) on the same handler: uvicorn configures its own loggers only."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["app"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8000)")] = None,
) -> None:
    """Start the HTTP API on the embedded defaults (or the VAE_ settings)."""
    import uvicorn

    from app.api import shutdown
    from app.api.connections import head_timeout_protocol
    from app.config import get_settings
    from app.main import create_app

    settings = get_settings()
    updates: dict[str, Any] = {}
    if host is not None:
        updates["host"] = host
    if port is not None:
        updates["port"] = port
    settings = settings.model_copy(update=updates)
    if not settings.admin_token and settings.host not in {"127.0.0.1", "localhost", "::1"}:
        typer.echo(
            f"VAE_ADMIN_TOKEN is not set: refusing to bind {settings.host}; binding 127.0.0.1 only.",
            err=True,
        )
        settings = settings.model_copy(update={"host": "127.0.0.1"})
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=_log_config(),
        access_log=settings.access_log,
        # Who the client is behind a proxy is VAE_RATE_LIMIT_TRUSTED_PROXIES' call alone, not
        # uvicorn's (which trusts X-Forwarded-For from 127.0.0.1 by default).
        proxy_headers=False,
        # Bounded ends whatever the clients do (app/api/connections.py): a deadline on each
        # request's head, idle keep-alive connections closed, and after SIGTERM the requests
        # still running past VAE_SHUTDOWN_TIMEOUT_S are cancelled. Bodies: app/api/limits.py.
        http=head_timeout_protocol(settings.header_timeout_s),
        timeout_keep_alive=settings.keep_alive_s,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    # A clean SIGTERM exits 0 (uvicorn alone re-raises it: status 143, a "crash").
    shutdown.run(config)


@app.command()
def openapi() -> None:
    """Print the OpenAPI document of the HTTP API: `vae openapi > openapi.json` regenerates the
    committed one, from which frontends generate typed clients."""
    from app.config import get_settings
    from app.main import create_app, openapi_json

    typer.echo(openapi_json(create_app(get_settings())), nl=False)


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="exit once the queue is empty")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            envvar="VAE_WORKER_METRICS_PORT", help="serve Prometheus metrics on this port"
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(envvar="VAE_WORKER_METRICS_HOST", help="address the metrics bind")
    ] = "127.0.0.1",
) -> None:
    """Run an RQ worker that trains the jobs queued through POST /jobs (needs VAE_REDIS_URL)."""
    import logging

    from app.config import get_settings
    from app.jobs.rq_backend import QUEUE_NAME, connect, sweep_repository
    from app.jobs.worker_metrics import MetricsWorker, serve_metrics

    settings = get_settings()
    if not settings.redis_url:
        raise typer.BadParameter("set VAE_REDIS_URL: the worker takes its jobs from Redis")
    logging.basicConfig(level=logging.INFO)
    connection = connect(settings.redis_url, socket_timeout=None)
    for leftover in sweep_repository(
        connection, str(settings.models_dir), settings.s3_endpoint_url, settings.job_stale_after_s
    ):
        logging.getLogger("app.worker").info("removed %s, left by a job that died", leftover)
    if metrics_port is not None:
        serve_metrics(metrics_host, metrics_port)
    MetricsWorker(
        [QUEUE_NAME], connection=connection, progress_connection=connect(settings.redis_url, 5.0)
    ).work(burst=burst, with_scheduler=False)


def _train_config(config: str | None, overrides: dict[str, Any]) -> Any:
    from app.training.config import TrainConfig

    values: dict[str, Any] = {}
    if config:
        path = Path(config)
        if not path.is_file() and not config.lstrip().startswith("{"):
            raise FileNotFoundError(f"--config {config}: no such file (nor JSON text)")
        try:
            values = json.loads(path.read_text() if path.is_file() else config)
        except json.JSONDecodeError as error:
            raise ValueError(f"--config {config}: not JSON ({error})") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.model_validate(values)


@contextlib.contextmanager
def _progress_display(console: Any, epochs: int) -> Iterator[Callable[[TrainProgress], None]]:
    """A progress bar on a terminal (one line an epoch in a log file); yields what to call
    with each progress snapshot."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        TextColumn("{task.fields[terms]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("train", total=1, epoch=f"1/{epochs} starting", terms="")
        previous: list[tuple[int, str]] = []

        def show(p: TrainProgress) -> None:
            terms = f"loss {p.loss:.2f} recon {p.reconstruction:.2f} kl {p.kl:.2f} w {p.kl_weight:.2f} {p.samples_per_second:.0f}/s"
            bar.update(task, total=p.steps, completed=p.step, epoch=epoch_label(p), terms=terms)
            if not console.is_terminal:  # a log file gets one line an epoch instead of a bar
                if previous and previous[-1][0] != p.epoch:
                    console.print(previous[-1][1])
                previous[:] = [
                    (p.epoch, f"epoch {p.epoch}/{p.epochs} {terms} eta {p.eta_seconds:.0f}s")
                ]

        yield show


@app.command()
def train(
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help=".npz or .npy of images")],
    name: Annotated[str, typer.Option(help="model name in the repository")],
    config: Annotated[
        str | None, typer.Option(help="TrainConfig as JSON text or a JSON file")
    ] = None,
    epochs: Annotated[int | None, typer.Option()] = None,
    arch: Annotated[str | None, typer.Option(help="mlp or conv")] = None,
    latent_dim: Annotated[int | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    eval_k: Annotated[int | None, typer.Option(help="IWAE importance samples")] = None,
    eval_images: Annotated[int | None, typer.Option(help="held-out images to score")] = None,
    models_dir: Annotated[
        str | None,
        typer.Option(help="model repository, a directory or s3://bucket/prefix (VAE_MODELS_DIR)"),
    ] = None,
    no_default: Annotated[
        bool, typer.Option("--no-default", help="do not make it the default version")
    ] = False,
) -> None:
    """Train a VAE on a dataset file, export it to ONNX and publish a new version."""
    from rich.console import Console

    from app.datasets.arrays import arrays_format
    from app.storage.files import check_name
    from app.training.hooks import TrainingHooks
    from app.training.pipeline import run_training

    check_name(name)
    arrays_format(data)
    cfg = _train_config(
        config,
        {"epochs": epochs, "arch": arch, "latent_dim": latent_dim, "seed": seed,
         "eval_k": eval_k, "eval_images": eval_images},
    )  # fmt: skip
    console = Console(stderr=True)
    console.print(f"training {name} on {data}: {cfg.model_dump_json()}")
    with _progress_display(console, cfg.epochs) as show:
        hooks = TrainingHooks(on_progress=show, on_stage=lambda s: console.print(f"[dim]{s}[/dim]"))
        repository = _repository(models_dir)
        published = run_training(cfg, data, name, repository, hooks, make_default=not no_default)
    metrics = published.manifest.metrics
    console.print(f"published {published.name}:{published.version}")
    if metrics is not None:
        console.print_json(metrics.model_dump_json(exclude={"kl_per_dim"}))


def epoch_label(progress: TrainProgress) -> str:
    """The epoch and how far into it a training is: "3/150 37%"."""
    share = progress.epoch_step / progress.epoch_steps if progress.epoch_steps else 0.0
    return f"{progress.epoch}/{progress.epochs} {share:4.0%}"


def _scored_images(
    data: Path, model: str, manifest: Any, images: int | None, binarize_seed: int | None
) -> tuple[Any, Any]:
    """The first `images` images of the file (binarized for a Bernoulli model when a seed is
    given), and their class indices for a conditional model."""
    import numpy as np

    from app.datasets.arrays import binarize, load_arrays
    from app.repository.kinds import model_kind

    dataset = load_arrays(data)
    x = dataset.as_float()[:images]
    if manifest.likelihood == "bernoulli" and binarize_seed is not None:
        x = binarize(x, np.random.default_rng(binarize_seed))
    if not model_kind(manifest.kind).conditional:
        return x, None
    if dataset.labels is None:
        raise typer.BadParameter(f"{model} is conditional: the data needs labels")
    return x, np.array([manifest.label_index(int(v)) for v in dataset.labels[: len(x)]])


def _version_directory(repository: Any, name: str, version: int, scratch: Path) -> Path:
    """The version's directory, or for an object store a local copy of it under `scratch`."""
    from app.repository.store import ModelRepository

    if isinstance(repository, ModelRepository):
        return repository.version_dir(name, version)
    directory = scratch / str(version)
    repository.export_version(name, version, directory)
    return directory


@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help=".npz or .npy of images")],
    model: Annotated[str, typer.Option(help="name or name:version")],
    k: Annotated[int, typer.Option(help="IWAE importance samples")] = 1000,
    images: Annotated[int | None, typer.Option(help="score only the first N images")] = None,
    binarize_seed: Annotated[
        int | None, typer.Option(help="binarize the images with this seed (Bernoulli models)")
    ] = 1,
    seed: Annotated[int, typer.Option(help="seed of the importance samples")] = 0,
    models_dir: Annotated[
        str | None, typer.Option(help="a directory or s3://bucket/prefix")
    ] = None,
) -> None:
    """Score a published version on a dataset file: the quantity its manifest reports, computed
    as its kind says (from the ONNX graphs without torch; an hvae from its PyTorch weights)."""
    import tempfile

    from app.evaluation.by_kind import HeldOut, load_graphs
    from app.repository.kinds import model_kind

    repository = _repository(models_dir)
    name, _, version_text = model.partition(":")
    version = int(version_text) if version_text else repository.default_version(name)
    if version is None:
        raise typer.BadParameter(f"no model named {name}")
    manifest = repository.manifest(name, version)
    x, y = _scored_images(data, model, manifest, images, binarize_seed)
    config = manifest.training.config if manifest.training else {}
    held_out = HeldOut(
        x, k=k, seed=seed, y=y, commitment_cost=float(config.get("commitment_cost", 0.25))
    )
    with tempfile.TemporaryDirectory(prefix="vae-evaluate-") as scratch:
        directory = _version_directory(repository, name, version, Path(scratch))
        graphs = load_graphs(
            model_kind(manifest.kind),
            directory,
            manifest.likelihood,
            lambda: _torch_evaluator(directory, manifest),
        )
        result = graphs.evaluate(held_out)
    typer.echo(
        json.dumps({k: v for k, v in result.__dict__.items() if k != "kl_per_dim"}, indent=2)
    )


def _torch_evaluator(directory: Path, manifest: Any) -> Any:
    """(x, k, seed) -> metrics from the version's PyTorch model (weights.safetensors and the
    config it was trained with), or None when torch is not installed."""
    try:
        from app.training.kinds import recipe_of
        from app.training.weights import load_model
    except ImportError:
        return None
    return recipe_of(manifest.kind).torch_evaluator(load_model(directory, manifest))


@app.command()
def compact(
    model: Annotated[str, typer.Option(help="name:version")],
    models_dir: Annotated[Path | None, typer.Option(help="a directory")] = None,
) -> None:
    """Rewrite a version's weights.safetensors in float16 (versions made before that default)."""
    from app.config import get_settings
    from app.repository.store import ModelRepository
    from app.training.weights import compact_version

    name, _, version = model.partition(":")
    location = models_dir or get_settings().models_dir
    if not isinstance(location, Path):
        raise typer.BadParameter("compact rewrites a version in place: give a directory")
    repository = ModelRepository(location)
    saved = compact_version(repository, name, int(version))
    typer.echo(f"{model}: weights rewritten in float16, {saved / 1e6:.1f} MB saved")


importer = typer.Typer(
    no_args_is_help=True, help="Import an autoencoder made elsewhere as a new model version."
)
app.add_typer(importer, name="import")


@importer.command("diffusers")
def import_diffusers_command(
    directory: Annotated[
        Path,
        typer.Argument(
            help="a local diffusers folder: AutoencoderKL, AutoencoderTiny, or a video "
            "autoencoder (AutoencoderKLWan, AutoencoderKLHunyuanVideo, AutoencoderKLLTXVideo, "
            "AutoencoderKLQwenImage)"
        ),
    ],
    name: Annotated[str, typer.Option(help="the model name to publish under")],
    fp16: Annotated[bool, typer.Option("--fp16", help="export the graphs in float16")] = False,
    models_dir: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Export a diffusers autoencoder to ONNX (dynamic batch, height and width), check it
    against diffusers at two sizes not traced, and publish it with a reconstructions report.
    A video autoencoder's graphs walk time in chunks; they are checked against diffusers at two
    frame counts (float32 only)."""
    from app.training.import_diffusers import import_diffusers
    from app.training.import_video import (
        VIDEO_CLASSES,
        diffusers_class_name,
        import_video_autoencoder,
    )

    repository = _local_repository(models_dir)
    class_name = diffusers_class_name(directory)
    if class_name in VIDEO_CLASSES:
        if fp16:
            raise ValueError(f"{class_name} is exported in float32 only: drop --fp16")
        version, manifest = import_video_autoencoder(repository, directory, name)
        typer.echo(_imported_video(version, manifest))
        return
    version, manifest = import_diffusers(repository, directory, name, fp16)
    typer.echo(_imported(version, manifest))


@importer.command("onnx")
def import_onnx_command(
    encoder: Annotated[Path, typer.Option(help="encoder graph: image -> mu (and logvar)")],
    decoder: Annotated[Path, typer.Option(help="decoder graph: latents -> image")],
    manifest: Annotated[Path, typer.Option(help="manifest.json (kind autoencoder, spatial)")],
    name: Annotated[str, typer.Option(help="the model name to publish under")],
    models_dir: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Import an ONNX encoder/decoder pair: checked against the manifest's file hashes (when
    it lists them) and by a trial run before it is published."""
    from app.importers.publish import import_onnx

    repository = _local_repository(models_dir)
    version, published = import_onnx(repository, name, encoder, decoder, manifest)
    typer.echo(_imported(version, published))


def _local_repository(models_dir: Path | None) -> Any:
    """The directory repository an import publishes into (`--models-dir`, else VAE_MODELS_DIR).
    An object-store repository is filled from one with `vae repository copy`."""
    from app.config import get_settings
    from app.repository.store import ModelRepository

    where = models_dir or get_settings().models_dir
    if not isinstance(where, Path):
        raise typer.BadParameter(
            f"imports publish into a directory (--models-dir); then `vae repository copy DIR {where}`"
        )
    return ModelRepository(where)


def _imported(version: int, manifest: Any) -> str:
    report = manifest.source.get("reconstructions", {})
    return (
        f"published {manifest.name}:{version} ({manifest.source.get('class', 'onnx')}, "
        f"latent {manifest.spatial.latent_channels} channels at 1/{manifest.spatial.downscale}, "
        f"{manifest.dtypes.decoder}); parity {manifest.parity or 'n/a'}; "
        f"reconstruction MAE {report.get('reconstruction_mae', float('nan')):.4f}"
    )


def _imported_video(version: int, manifest: Any) -> str:
    video = manifest.video
    return (
        f"published {manifest.name}:{version} ({manifest.source.get('class')}, latent "
        f"{manifest.spatial.latent_channels} channels at 1/{manifest.spatial.downscale} in space "
        f"and 1/{video.temporal_downscale} in time, {video.decode.scheme}, "
        f"{manifest.dtypes.decoder}); parity max_rel_err {manifest.parity['max_rel_err']:.2e}"
    )


def _repository(location: str | None) -> Any:
    """The model repository at `location` (a directory or s3://bucket/prefix), else
    VAE_MODELS_DIR's; an object store's endpoint is VAE_S3_ENDPOINT_URL."""
    from app.config import get_settings
    from app.repository.opening import open_repository
    from app.storage.locations import to_location

    settings = get_settings()
    where = settings.models_dir if location is None else to_location(location)
    return open_repository(where, settings.s3_endpoint_url)


repository_app = typer.Typer(no_args_is_help=True, help="Manage model repositories.")
app.add_typer(repository_app, name="repository")


@repository_app.command("copy")
def repository_copy(
    source: Annotated[str, typer.Argument(help="a directory or s3://bucket/prefix")],
    target: Annotated[str, typer.Argument(help="a directory or s3://bucket/prefix")],
    model: Annotated[
        list[str] | None, typer.Option(help="copy only this model (repeatable)")
    ] = None,
) -> None:
    """Copy a model repository between a directory and an object store, either way: every
    version the target has not issued (numbers kept; manifests last, create-only in a store),
    then each model's DEFAULT. Copying again copies only what is new."""
    from app.repository.copying import copy_repository

    origin = _repository(source)
    names = origin.names()
    if not names:
        raise FileNotFoundError(f"{source} holds no model (a typo in the path?)")
    missing = [name for name in model or [] if name not in names]
    if missing:
        raise LookupError(f"{source} has no model {', '.join(missing)}; it has {', '.join(names)}")
    copied = copy_repository(origin, _repository(target), model or None)
    typer.echo(f"copied {len(copied)}: {', '.join(copied) or 'nothing new'}")


# What an ordinary mistake raises (a missing file, bad JSON or settings, an unknown model or
# version, an unreachable store): said in one line, not with a traceback.
USER_ERRORS = (OSError, ValueError, LookupError)


def main() -> None:
    """Entry point of the `vae` console script: an ordinary mistake ends with `error: <why>`
    on stderr and exit code 1."""
    try:
        app()
    except USER_ERRORS as error:
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
