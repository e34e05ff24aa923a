"""One training run of one cell, upstream's way (``lib/evaluate.py``): one step at lr 0 and an
evaluation, training to half the budget and an evaluation, training to the end and an
evaluation. ``training_time`` is timed as upstream's hook times it (``lib/training_time.py``):
in each of the three training calls, from the start of its first step to the start of its last
step, so the first evaluation's is exactly 0.0. A compiled step is compiled and warmed up before
the clock starts (:meth:`Trainer.warm_up`), so no compilation is ever counted."""

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
from nbcompile.runtime.device import autocast, autocast_dtype, check_precision, float32_math, seeded, synchronize
from nbcompile.runtime.loader import load_model
from nbcompile.space.ops import TRAIN_EPOCHS
from nbcompile.space.spec import ModelSpec
from nbcompile.train import recipe
from nbcompile.train.cifar10 import Cifar10
from nbcompile.train.data import BatchStream, DeviceImages, eval_batches, normalize

#: Steps a compiled training step runs before training starts, on a fixed batch, everything it
#: changed put back afterwards, so that no compilation lands in ``training_time``. The first call
#: compiles; the second is a margin for whatever compiles once gradients exist (dynamo itself
#: recompiles nothing then, the optimizer's slots being created up front: a test counts its graphs).
WARMUP_STEPS = 2


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite (upstream retries the run from scratch)."""


@dataclass(frozen=True)
class TrainConfig:
    """Upstream's recipe; every default is the value NAS-Bench-101 used."""

    epochs: int = TRAIN_EPOCHS
    batch_size: int = recipe.BATCH_SIZE
    base_lr: float = recipe.BASE_LR
    weight_decay: float = recipe.WEIGHT_DECAY
    #: BatchNorm statistics over ``ghost_groups`` slices of each batch, as upstream's batch of 256
    #: was normalised per TPU shard of 128 (``tpu_num_shards`` 2, no cross-replica BatchNorm).
    ghost_bn: bool = True
    ghost_groups: int = 2
    #: Compile the training step through ``nbcompile.optimize(train=True)``: cell by cell, in
    #: channels_last (worth it on a GPU; off by default).
    compile_step: bool = False
    #: The ``torch.compile`` backend of a compiled step (``aot_eager`` or ``eager`` to debug).
    compile_backend: str = "inductor"
    #: On a CUDA device, capture the compiled step (forward, loss, backward, TF RMSProp with the
    #: learning rate as a device tensor) in one CUDA graph and replay it (off: launched kernel by kernel).
    cuda_graphs: bool = True
    #: Sample the loss every so many steps (for the plot and the NaN check; no sync in between).
    loss_every: int = 100
    #: Check the sampled losses for NaN and the time limit every so many steps (one host sync
    #: each), and at evaluations.
    nan_check_every: int = 1000
    #: "fp32" (IEEE float32, TF32 off), "tf32" (TF32 convolutions and matmuls) or "bf16" autocast
    #: of forward and loss (TPU v2 multiplied in bf16 inside its float32 convolutions).
    precision: str = "fp32"
    #: Upstream's ``train_seconds`` safeguard (4 h there): stop training once this much training
    #: time is measured; the run is still evaluated and recorded. None: no limit.
    max_train_seconds: float | None = None
    #: Channels-last memory layout for model and batches (faster convolutions on GPUs).
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}", "epochs")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}", "batch_size")
        if self.ghost_bn and self.batch_size % self.ghost_groups:
            raise ConfigError(
                f"batch_size {self.batch_size} does not split into {self.ghost_groups} ghost batches", "batch_size"
            )
        check_precision(self.precision)
        if self.max_train_seconds is not None and not self.max_train_seconds > 0:
            raise ConfigError(f"max_train_seconds must be positive, got {self.max_train_seconds}", "max_train_seconds")
        for name in ("loss_every", "nan_check_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}", name)


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
    #: Whether ``max_train_seconds`` stopped training before the budget's last step.
    time_limit_reached: bool = False
    #: Seconds spent compiling and warming up the training step before the clock started.
    warmup_time: float = 0.0


@dataclass(frozen=True)
class Segment:
    """One training call, timed upstream's way: clock readings at the start of its first step and
    at the start of its last (``timed_steps`` steps apart); ``stopped`` if the time limit ended it."""

    start: float
    end: float
    timed_steps: int
    stopped: bool


def upstream_seconds(previous: float, start: float, end: float) -> float:
    """``previous + (end − start)`` as upstream's timing variables hold it: timestamps rounded to
    milliseconds, the total a float32."""
    milliseconds = round(end * 1000) - round(start * 1000)
    return float(np.float32(previous) + np.float32(milliseconds / 1000))


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
    with seeded(seed):
        return load_model(path)


def _layout(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def accuracy_count(
    model: nn.Module, data: DeviceImages, batch_size: int, precision: str = "fp32", channels_last: bool = False
) -> tuple[int, int]:
    """Correct predictions and images over ``len // batch_size`` whole batches, eval-mode BN.
    ``precision`` selects the autocast; the caller sets the float32 math (:func:`float32_math`)."""
    check_precision(precision)
    was_training = model.training
    model.eval()
    device = data.labels.device
    correct = torch.zeros((), dtype=torch.int64, device=device)
    images = 0
    with torch.no_grad(), autocast(device, autocast_dtype(precision)):
        for batch, labels in eval_batches(data, batch_size):
            correct += (model(_layout(batch, channels_last)).argmax(1) == labels).sum()
            images += labels.shape[0]
    model.train(was_training)
    return int(correct.item()), images


def _accuracy(correct: int, images: int) -> float:
    return float(np.float32(correct / images)) if images else 0.0


def make_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    weight_decay: float,
    precision: str = "fp32",
    channels_last: bool = False,
) -> Callable:
    """``step(images, labels) -> loss``: forward, upstream's loss, backward, TF RMSProp update,
    eagerly (the compiled step is ``nbcompile.optimize``'s, see :class:`Trainer`). Nothing in it
    reads a value back to the host."""
    dtype = autocast_dtype(check_precision(precision))
    parameters = [p for p in model.parameters() if p.requires_grad]

    def step(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with autocast(images.device, dtype):
            logits = model(_layout(images, channels_last))
        loss = recipe.nasbench_loss(logits, labels, parameters, weight_decay)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


class Trainer:
    """A model, its optimizer, schedule and batch stream, ready to step: what :func:`train_run`
    drives and what the speed benchmark times. Its steps and evaluations run under the config's
    float32 math (:func:`~nbcompile.runtime.device.float32_math`), set for the call only."""

    def __init__(
        self,
        spec: ModelSpec,
        data: DeviceData,
        config: TrainConfig,
        network: NetworkConfig,
        seed: int,
        model_dir: Path,
        device: torch.device | str = "cpu",
    ) -> None:
        self.device, self.data, self.config = torch.device(device), data, config
        self.model = build_network(spec, network, model_dir, seed).to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if config.ghost_bn:
            recipe.use_ghost_batch_norm(self.model, config.ghost_groups)
        self.model.train()
        self.trainable_parameters = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.total_steps = recipe.steps_for(config.epochs, len(data.train), config.batch_size)
        if self.total_steps < 1:
            raise ConfigError(
                f"{config.epochs} epochs of {len(data.train)} images is less than one batch of {config.batch_size}",
                "epochs",
            )
        self.schedule = recipe.schedule_tensor(self.total_steps, config.base_lr, self.device)
        self.lr = self.schedule[0].clone()  # updated in place: the step sees one tensor throughout
        self.warmup_time = 0.0
        if config.compile_step:
            started = time.perf_counter()
            self.step_function = self._compiled_step()
            self.optimizer = self.step_function.optimizer
            self.optimizer.initialize_state()
            self.warm_up(WARMUP_STEPS)
            self.warmup_time = time.perf_counter() - started  # compile, capture and warm-up, once
        else:
            self.optimizer = recipe.TFRMSProp(self.model.parameters(), lr=self.lr)
            self.optimizer.initialize_state()
            self.step_function = make_train_step(
                self.model, self.optimizer, config.weight_decay, config.precision, config.channels_last
            )
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        self.stream = BatchStream(data.train, config.batch_size, generator)
        self.step = 0
        self.losses: list[tuple[int, torch.Tensor]] = []  # sampled on the device, read at checks

    def _compiled_step(self) -> Callable:
        """``nbcompile.optimize(model, train=True)`` with upstream's loss and TF's RMSProp, compiled
        (and warmed up, its state put back) under the run's float32 math; on CUDA captured in a
        CUDA graph unless ``cuda_graphs`` is off. The learning rate is ``self.lr``, a device
        tensor the loop updates in place, so the graph needs no new capture as it changes."""
        from nbcompile.runtime.optimize import optimize

        config = self.config
        parameters = [p for p in self.model.parameters() if p.requires_grad]

        def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return recipe.nasbench_loss(logits, labels, parameters, config.weight_decay)

        example = normalize(self.data.train.images[: config.batch_size])
        with float32_math(config.precision):
            return optimize(
                self.model,
                example,
                train=True,
                dtype=autocast_dtype(config.precision),
                backend=config.compile_backend,
                cuda_graphs=config.cuda_graphs and self.device.type == "cuda",
                loss_fn=loss_fn,
                optimizer=lambda params: recipe.TFRMSProp(params, lr=self.lr),
            )

    def warm_up(self, steps: int) -> float:
        """Run the step function ``steps`` times on the first training images (no augmentation,
        no random draw), then put back in place every weight, BatchNorm statistic, optimizer slot
        and the learning rate; returns the seconds it took. The gradients stay (every step sets
        them before reading them)."""
        state = [*self.model.state_dict().values(), self.lr]
        state += [slot for slots in self.optimizer.state.values() for slot in slots.values()]
        saved = [tensor.clone() for tensor in state]
        size = self.config.batch_size
        images, labels = normalize(self.data.train.images[:size]), self.data.train.labels[:size]
        started = time.perf_counter()
        with float32_math(self.config.precision):
            for _ in range(steps):
                self.step_function(images, labels)
            self.synchronize()
        seconds = time.perf_counter() - started
        with torch.no_grad():
            for tensor, value in zip(state, saved):
                tensor.copy_(value)
        return seconds

    def train_until(
        self,
        target: int,
        progress: Callable[[int, int], None] | None = None,
        time_left: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> Segment:
        """Step to global step ``target`` and time it as upstream's hook does: from the start of
        the first step to the start of the last one. The host reads back nothing but the clock
        and the last sampled loss, every ``nan_check_every`` steps and before the last step.

        With ``time_left`` (seconds), training stops after the first step that starts once more
        than that has been measured, as upstream's ``train_seconds`` hook stops after the step
        whose start time exceeds the limit (so a call that starts past it runs one step)."""
        config = self.config
        first, stop = self.step, False
        with float32_math(config.precision):
            self.synchronize()
            start = now = clock()
            while self.step < target and not stop:
                if self.step > first and (self.step + 1 == target or self.step % config.nan_check_every == 0):
                    self.synchronize()
                    now = clock()
                stop = time_left is not None and now - start > time_left
                self.lr.copy_(self.schedule[min(self.step, self.total_steps)])
                loss = self.step_function(*self.stream.next())
                self.step += 1
                if self.step % config.loss_every == 0 or self.step == target or stop:
                    self.losses.append((self.step, loss))
                if self.step % config.nan_check_every == 0:
                    self.check_losses()
                if progress is not None:
                    progress(self.step, self.total_steps)
            self.synchronize()
        return Segment(start, now, max(self.step - first - 1, 0), stop and self.step < target)

    def check_losses(self) -> None:
        """Raise NonFiniteLoss if any sampled loss is NaN or infinite (one device sync)."""
        if self.losses and not bool(torch.isfinite(torch.stack([value for _, value in self.losses])).all()):
            bad = next(s for s, value in self.losses if not math.isfinite(float(value)))
            raise NonFiniteLoss(f"loss is not finite at step {bad} of {self.total_steps}")

    def synchronize(self) -> None:
        synchronize(self.device)

    def accuracy_counts(self) -> list[tuple[int, int]]:
        """(correct, images) on train_eval, valid and test."""
        data, batch = self.data, self.config.batch_size
        config = self.config
        with float32_math(config.precision):
            return [
                accuracy_count(self.model, images, batch, config.precision, config.channels_last)
                for images in (data.train_eval, data.valid, data.test)
            ]


def train_run(
    spec: ModelSpec,
    data: DeviceData,
    config: TrainConfig,
    network: NetworkConfig,
    seed: int,
    model_dir: Path,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> RunResult:
    """Train ``spec`` once from scratch; raises NonFiniteLoss if the loss diverges. ``clock``
    times the training steps (``total_time`` is wall time from the start)."""
    started = time.perf_counter()
    trainer = Trainer(spec, data, config, network, seed, model_dir, device)
    evaluations: list[Evaluation] = []
    training_time, timed_steps, limit_reached = 0.0, 0, False
    for fraction, target in zip(
        recipe.EVALUATION_FRACTIONS, evaluation_steps(config.epochs, len(data.train), config.batch_size)
    ):
        limit = config.max_train_seconds
        segment = trainer.train_until(target, progress, None if limit is None else limit - training_time, clock)
        training_time = upstream_seconds(training_time, segment.start, segment.end)
        timed_steps += segment.timed_steps
        limit_reached = limit_reached or segment.stopped
        trainer.check_losses()
        counts = trainer.accuracy_counts()
        evaluations.append(
            Evaluation(
                current_epoch=fraction * config.epochs,  # the planned epoch, as upstream records it
                training_time=training_time,
                train_accuracy=_accuracy(*counts[0]),
                validation_accuracy=_accuracy(*counts[1]),
                test_accuracy=_accuracy(*counts[2]),
                images=counts[1][1],
            )
        )
    return RunResult(
        evaluations=evaluations,
        trainable_parameters=trainer.trainable_parameters,
        training_time=training_time,
        total_time=time.perf_counter() - started,
        steps=trainer.step,
        images_per_second=timed_steps * config.batch_size / training_time if training_time else 0.0,
        losses=[(s, float(value)) for s, value in trainer.losses],
        time_limit_reached=limit_reached,
        warmup_time=trainer.warmup_time,
    )
