"""One training run of one cell, upstream's way (reference §5.1): one step at lr 0 and an
evaluation, training to half the budget and an evaluation, training to the end and an
evaluation. ``training_time`` counts training steps only."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nbcompile.compiler.config import NetworkConfig
from nbcompile.compiler.driver import compile_to_file
from nbcompile.errors import ConfigError
from nbcompile.runtime.loader import load_model
from nbcompile.space.spec import ModelSpec
from nbcompile.train import recipe
from nbcompile.train.cifar10 import Cifar10
from nbcompile.train.data import BatchStream, DeviceImages, eval_batches


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite (upstream retries the run from scratch)."""


@dataclass(frozen=True)
class TrainConfig:
    """Upstream's recipe; every default is the value NAS-Bench-101 used."""

    epochs: int = 108
    batch_size: int = recipe.BATCH_SIZE
    base_lr: float = recipe.BASE_LR
    weight_decay: float = recipe.WEIGHT_DECAY
    #: BatchNorm statistics over ``ghost_groups`` slices of each batch (inferred, not verified).
    ghost_bn: bool = False
    ghost_groups: int = 2
    #: Compile the training step with ``torch.compile`` (worth it on a GPU; off by default).
    compile_step: bool = False
    #: Sample the loss every so many steps (for the plot and the NaN check; no sync in between).
    loss_every: int = 100

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}", "epochs")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}", "batch_size")
        if self.ghost_bn and self.batch_size % self.ghost_groups:
            raise ConfigError(f"batch_size {self.batch_size} does not split into {self.ghost_groups} ghost batches", "batch_size")
        if self.loss_every < 1:
            raise ConfigError(f"loss_every must be at least 1, got {self.loss_every}", "loss_every")


@dataclass
class DeviceData:
    """Upstream's four sets, resident on one device."""

    train: DeviceImages
    valid: DeviceImages
    test: DeviceImages
    train_eval: DeviceImages

    @classmethod
    def of(cls, data: Cifar10, device: torch.device | str) -> DeviceData:
        return cls(*(DeviceImages.of(getattr(data, name), device) for name in ("train", "valid", "test", "train_eval")))


@dataclass(frozen=True)
class Evaluation:
    """One of the three evaluations; accuracies are ``float32(k / images)``."""

    current_epoch: float
    training_time: float
    train_accuracy: float
    validation_accuracy: float
    test_accuracy: float
    images: int


@dataclass
class RunResult:
    evaluations: list[Evaluation]
    trainable_parameters: int
    training_time: float
    total_time: float
    steps: int
    images_per_second: float
    losses: list[tuple[int, float]] = field(default_factory=list)


def evaluation_steps(epochs: int, train_images: int, batch_size: int) -> list[int]:
    """Global steps after which upstream evaluates: 1 (one step at lr 0), half and full budget."""
    steps, previous = [], 1
    for fraction in recipe.EVALUATION_FRACTIONS:
        previous = max(previous, recipe.steps_for(fraction * epochs, train_images, batch_size))
        steps.append(previous)
    return steps


def build_network(spec: ModelSpec, network: NetworkConfig, model_dir: Path, seed: int) -> nn.Module:
    """Generate the cell's model file into ``model_dir`` and instantiate it, its initial weights
    drawn from ``seed`` without touching torch's global random state."""
    path = compile_to_file(spec, model_dir, **network.as_dict())
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return load_model(path)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def accuracy_count(model: nn.Module, data: DeviceImages, batch_size: int) -> tuple[int, int]:
    """Correct predictions and images over ``len // batch_size`` whole batches, eval-mode BN."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=data.labels.device)
    images = 0
    with torch.no_grad():
        for batch, labels in eval_batches(data, batch_size):
            correct += (model(batch).argmax(1) == labels).sum()
            images += labels.shape[0]
    model.train(was_training)
    return int(correct.item()), images


def _accuracy(correct: int, images: int) -> float:
    return float(np.float32(correct / images)) if images else 0.0


def make_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, weight_decay: float) -> Callable:
    """``step(images, labels) -> loss``: forward, upstream's loss, backward, TF RMSProp update.
    Nothing in it reads a value back to the host. (Where a compiled training step from the
    GPU paths work exists, this is the function to hand to it.)"""
    parameters = [p for p in model.parameters() if p.requires_grad]

    def step(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = recipe.nasbench_loss(model(images), labels, parameters, weight_decay)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def train_run(
    spec: ModelSpec,
    data: DeviceData,
    config: TrainConfig,
    network: NetworkConfig,
    seed: int,
    model_dir: Path,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Train ``spec`` once from scratch; raises NonFiniteLoss if the loss diverges."""
    started = time.perf_counter()
    device = torch.device(device)
    model = build_network(spec, network, model_dir, seed).to(device)
    if config.ghost_bn:
        recipe.use_ghost_batch_norm(model, config.ghost_groups)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    train_images = len(data.train)
    total_steps = recipe.steps_for(config.epochs, train_images, config.batch_size)
    if total_steps < 1:
        raise ConfigError(f"{config.epochs} epochs of {train_images} images is less than one batch of {config.batch_size}", "epochs")
    schedule = recipe.schedule_tensor(total_steps, config.base_lr, device)
    lr = schedule[0].clone()
    optimizer = recipe.TFRMSProp(model.parameters(), lr=lr)
    step_function = make_train_step(model, optimizer, config.weight_decay)
    if config.compile_step:
        step_function = torch.compile(step_function)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    stream = BatchStream(data.train, config.batch_size, generator)

    evaluations: list[Evaluation] = []
    losses: list[tuple[int, torch.Tensor]] = []
    training_time, step = 0.0, 0
    for fraction, target in zip(recipe.EVALUATION_FRACTIONS, evaluation_steps(config.epochs, train_images, config.batch_size)):
        _synchronize(device)
        segment = time.perf_counter()
        while step < target:
            lr.copy_(schedule[step])
            loss = step_function(*stream.next())
            step += 1
            if step % config.loss_every == 0 or step == target:
                losses.append((step, loss))
            if progress is not None:
                progress(step, total_steps)
        _synchronize(device)
        training_time += time.perf_counter() - segment
        sampled = torch.stack([value for _, value in losses]) if losses else torch.zeros(1)
        if not bool(torch.isfinite(sampled).all()):
            bad = next(s for s, value in losses if not math.isfinite(float(value)))
            raise NonFiniteLoss(f"loss is not finite at step {bad} of {total_steps}")
        counts = [accuracy_count(model, images, config.batch_size) for images in (data.train_eval, data.valid, data.test)]
        evaluations.append(
            Evaluation(
                current_epoch=fraction * config.epochs,
                training_time=float(np.float32(training_time)),
                train_accuracy=_accuracy(*counts[0]),
                validation_accuracy=_accuracy(*counts[1]),
                test_accuracy=_accuracy(*counts[2]),
                images=counts[1][1],
            )
        )
    return RunResult(
        evaluations=evaluations,
        trainable_parameters=trainable,
        training_time=training_time,
        total_time=time.perf_counter() - started,
        steps=step,
        images_per_second=step * config.batch_size / training_time if training_time else 0.0,
        losses=[(s, float(value)) for s, value in losses],
    )
