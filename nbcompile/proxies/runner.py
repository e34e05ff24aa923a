"""Scoring cells: the batch every cell is scored on, the networks built in memory, the proxies
timed one by one."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from nbcompile.compiler.config import NetworkConfig
from nbcompile.errors import ConfigError
from nbcompile.proxies.names import DATA_FREE, PLAN_PROXY_NAMES, PROXY_NAMES
from nbcompile.proxies.scores import NETWORK_PROXIES, PLAN_PROXIES
from nbcompile.runtime.device import synchronize
from nbcompile.runtime.inmemory import NetworkBuilder
from nbcompile.space.enumeration import cell_keys
from nbcompile.space.graph import matrix_from_bits
from nbcompile.space.ops import AVAILABLE_OPS, INPUT, OUTPUT
from nbcompile.space.spec import ModelSpec, as_model_spec
from nbcompile.train.cifar10 import load_cifar10
from nbcompile.train.data import SIZE, augment

#: The reference batch size (Abdelfattah et al.: one CIFAR-10 training batch of 256).
DEFAULT_BATCH_SIZE = 256


@dataclass(frozen=True)
class ProxyBatch:
    """The one batch every cell is scored on, and a description of where it came from."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str


def cifar10_batch(path: str | os.PathLike[str], batch_size: int, seed: int) -> ProxyBatch:
    """``batch_size`` images drawn without replacement from CIFAR-10's 40,000 training images (the
    binary files at ``path``) with a generator seeded with ``seed``, given the training
    augmentation (pad, random crop, random flip) and normalised, as upstream trained."""
    train = load_cifar10(path).train
    if batch_size > len(train):
        raise ConfigError(f"--batch-size {batch_size} exceeds the {len(train):,} training images in {path}")
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(train), generator=generator)[:batch_size]
    images = augment(torch.from_numpy(train.images)[chosen], generator)
    labels = torch.from_numpy(train.labels)[chosen]
    return ProxyBatch(images, labels, f"CIFAR-10 training images, augmented, seed {seed}")


def random_batch(batch_size: int, seed: int, config: NetworkConfig) -> ProxyBatch:
    """``batch_size`` standard-normal images and uniform labels from a generator seeded with
    ``seed``: a stand-in for data, for the data-free proxies or for tests."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn((batch_size, config.in_channels, SIZE, SIZE), generator=generator)
    labels = torch.randint(0, config.num_labels, (batch_size,), generator=generator)
    return ProxyBatch(images, labels, f"standard-normal noise, seed {seed}")


def sample_specs(count: int, seed: int) -> list[ModelSpec]:
    """``count`` distinct cells drawn uniformly without replacement from the 423,624 unique cells
    of NAS-Bench-101 (each in its stored labeling), with numpy's generator seeded with ``seed``;
    in the enumeration's order."""
    keys = list(cell_keys())
    if not 1 <= count <= len(keys):
        raise ConfigError(f"--sample must be between 1 and {len(keys):,}, got {count}")
    chosen = np.sort(np.random.default_rng(seed).choice(len(keys), size=count, replace=False))
    cells = []
    for index in chosen.tolist():
        size, mask, labeling = keys[index]
        ops = [INPUT, *(AVAILABLE_OPS[label] for label in labeling), OUTPUT]
        cells.append(ModelSpec(matrix_from_bits(mask, size), ops))
    return cells


@dataclass
class ProxyScorer:
    """Scores cells on one batch: each cell's network built in memory (its canonical labeling,
    initialised with ``seed``), then every requested proxy. ``seconds`` adds up the time spent
    building networks (``"build"``) and in each proxy."""

    proxies: tuple[str, ...]
    batch: ProxyBatch
    config: NetworkConfig = field(default_factory=NetworkConfig)
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seconds: dict[str, float] = field(default_factory=dict)
    builder: NetworkBuilder = field(init=False)

    def __post_init__(self) -> None:
        unknown = [name for name in self.proxies if name not in PROXY_NAMES]
        if unknown:
            raise ConfigError(f"unknown proxy {unknown[0]!r} (known: {', '.join(PROXY_NAMES)})")
        self.builder = NetworkBuilder(self.config)
        self._images = self.batch.images.to(self.device)
        self._labels = self.batch.labels.to(self.device)

    def _timed(self, name: str, start: float) -> None:
        synchronize(self.device)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def score(self, spec: Any) -> dict[str, float | int]:
        """The requested proxies of one cell, by name (in table order)."""
        plan = self.builder.plan(spec)
        scores: dict[str, float | int] = {
            name: PLAN_PROXIES[name](plan) for name in self.proxies if name in PLAN_PROXY_NAMES
        }
        network_proxies = [name for name in self.proxies if name in NETWORK_PROXIES]
        if network_proxies:
            start = time.perf_counter()
            network = self.builder.build(spec, self.seed, self.device)
            self._timed("build", start)
            for name in network_proxies:
                start = time.perf_counter()
                scores[name] = NETWORK_PROXIES[name](network, self._images, self._labels)
                self._timed(name, start)
        return scores

    def score_all(self, specs: Iterable[Any]) -> Iterator[tuple[str, dict[str, float | int]]]:
        """``(module_hash, scores)`` of every spec, in order."""
        for spec in specs:
            model_spec = as_model_spec(spec)
            yield model_spec.module_hash, self.score(model_spec)


def needs_data(proxies: Iterable[str]) -> bool:
    """True if any of ``proxies`` depends on the batch's values."""
    return any(name not in DATA_FREE for name in proxies)
