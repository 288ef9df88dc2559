"""Training speed: the project's trainer against a bare PyTorch loop of the same network, in one run.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.train_speed --config configs/mnist-hvae.json

Both train the same model (built by the project's `build_model`, so the network is the same) on
the same MNIST digits with the same objective, batch size and optimizer; the bare loop is what
anyone would write by hand: shuffle, index, binarize, forward, backward, step, nothing else. The
trainer adds KL warm-up, free bits, the learning-rate schedule, progress and cancel checks. The
two alternate in rounds so that whatever else runs on the machine disturbs both alike; each
keeps its best round. `--compile` adds the trainer's network under torch.compile as a third
contender.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from app.datasets.arrays import ImageDataset, load_arrays
from app.training.config import TrainConfig
from app.training.kinds import build_model
from app.training.losses import iwae_bound
from app.training.trainer import train

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "mnist-train.npz"


def bare_loop(config: TrainConfig, data: ImageDataset, steps: int) -> float:
    """Samples a second of a hand-written loop over the same network and objective."""
    torch.manual_seed(config.seed)
    model = build_model(config, data.shape)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    images = torch.from_numpy(data.as_float())
    order = torch.randperm(len(images))
    started = time.perf_counter()
    for step in range(steps):
        rows = order[(step * config.batch_size) % len(images) :][: config.batch_size]
        batch = torch.bernoulli(images[rows])
        if config.objective == "iwae":
            log_px, log_ratio, _ = model.importance_terms(batch, config.iwae_k)
            loss = -iwae_bound(log_px + log_ratio).mean()
        else:
            log_px, kl_dims = model.objective(batch)
            loss = -(log_px - kl_dims.sum(dim=1)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * config.batch_size / (time.perf_counter() - started)


def project_trainer(config: TrainConfig, data: ImageDataset, steps: int) -> float:
    """Samples a second of `app.training.trainer.train` for `steps` steps (one epoch of them)."""
    subset = ImageDataset(data.images[: steps * config.batch_size], None)
    run = config.model_copy(update={"epochs": 1})
    outcome = train(run, subset)
    return steps * config.batch_size / outcome.seconds


def compiled_trainer(config: TrainConfig, data: ImageDataset, steps: int) -> float:
    """The trainer with the network under torch.compile (the inductor backend on the CPU)."""
    import app.training.trainer as trainer_module

    build = trainer_module.build_model

    def build_compiled(*args: object, **kwargs: object) -> torch.nn.Module:
        model = build(*args, **kwargs)  # type: ignore[arg-type]
        model.decoder = torch.compile(model.decoder)
        model.encoder = torch.compile(model.encoder)
        return model

    trainer_module.build_model = build_compiled  # type: ignore[assignment]
    try:
        project_trainer(config, data, 4)  # compiles outside the measured run
        return project_trainer(config, data, steps)
    finally:
        trainer_module.build_model = build


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.train_speed", description=__doc__)
    parser.add_argument("--config", default=str(ROOT / "configs" / "mnist-hvae.json"))
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--steps", type=int, default=100, help="training steps a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile")
    args = parser.parse_args(argv)
    path = Path(args.config)
    config = TrainConfig.model_validate(json.loads(path.read_text()))
    data = load_arrays(Path(args.data))
    contenders: dict[str, Callable[[TrainConfig, ImageDataset, int], float]] = {
        "bare PyTorch loop": bare_loop,
        "vae-service trainer": project_trainer,
    }
    if args.compile:
        contenders["trainer + torch.compile"] = compiled_trainer
    best: dict[str, float] = dict.fromkeys(contenders, 0.0)
    for round_index in range(args.rounds):
        for name, measure in contenders.items():
            rate = measure(config, data, args.steps)
            best[name] = max(best[name], rate)
            print(f"round {round_index + 1} {name}: {rate:,.0f} samples/s", flush=True)
    print(f"\n{path.name}, {torch.get_num_threads()} torch threads, best of {args.rounds}:")
    for name, rate in best.items():
        ratio = rate / best["bare PyTorch loop"]
        print(f"  {name:26s} {rate:8,.0f} samples/s  {ratio:.2f}x the bare loop")


if __name__ == "__main__":
    main()
