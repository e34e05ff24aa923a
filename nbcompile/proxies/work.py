"""Scoring many cells as resumable work: the cells split into chunks, each chunk scored as one job
of the training sweeps' loop (:func:`nbcompile.train.sweep.run_sweep`: in this process, in local
worker processes, or as Ray tasks; retried, then recorded as failed), its result written
atomically as JSON into a work folder, so that a rerun skips the chunks already scored. The table
is assembled from the chunks at the end."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nbcompile._version import __version__
from nbcompile.compiler.config import NetworkConfig
from nbcompile.errors import ConfigError, DatasetError
from nbcompile.fileio import read_json_document, remove_stale_temporaries, write_atomic
from nbcompile.proxies.runner import ProxyBatch, ProxyScorer, cifar10_batch, random_batch
from nbcompile.space.spec import ModelSpec
from nbcompile.train.sweep import MAX_ATTEMPTS, StepProgress

#: The format of a chunk's result document.
FORMAT = "nbcompile-proxies-chunk/1"
#: The work folder's record of the settings its chunks were scored with.
SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class Chunk:
    """Consecutive cells of the table, scored together: ``(module_hash, matrix, ops)`` each."""

    index: int
    cells: tuple[tuple[str, tuple[tuple[int, ...], ...], tuple[str, ...]], ...]

    @property
    def name(self) -> str:
        return f"chunk-{self.index:06d}"

    @property
    def module_hashes(self) -> list[str]:
        return [module_hash for module_hash, _, _ in self.cells]

    @property
    def specs(self) -> list[ModelSpec]:
        return [ModelSpec([list(row) for row in matrix], list(ops)) for _, matrix, ops in self.cells]


def plan_chunks(specs: Sequence[ModelSpec], chunk_size: int) -> list[Chunk]:
    """``specs`` (distinct cells, in table order) in chunks of ``chunk_size`` cells."""
    if chunk_size < 1:
        raise ConfigError(f"--chunk-size must be at least 1, got {chunk_size}")
    cells = [(spec.module_hash, spec.pruned_matrix, spec.pruned_ops) for spec in specs]
    return [
        Chunk(number, tuple(cells[start : start + chunk_size]))
        for number, start in enumerate(range(0, len(cells), chunk_size))
    ]


@dataclass(frozen=True)
class ProxySettings:
    """What every chunk of one table shares. ``data``: CIFAR-10's binary files for the batch, or
    None for noise. ``threads``: torch's threads in a worker process (None: leave them)."""

    proxies: tuple[str, ...]
    config: NetworkConfig = field(default_factory=NetworkConfig)
    seed: int = 0
    batch_size: int = 256
    data: str | None = None
    device: str = "cpu"
    max_attempts: int = MAX_ATTEMPTS
    threads: int | None = None

    def identity(self, chunks: Sequence[Chunk]) -> dict[str, Any]:
        """What must be the same for a chunk scored earlier to be reused: everything that changes
        a score (where and how fast it ran does not), and the cells of every chunk."""
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(f"{chunk.name}:{','.join(chunk.module_hashes)};".encode())
        return {
            "format": FORMAT,
            "proxies": list(self.proxies),
            "config": self.config.as_dict(),
            "seed": self.seed,
            "batch_size": self.batch_size,
            "data": self.data,
            "torch": torch.__version__,
            "cells": digest.hexdigest(),
        }


@functools.lru_cache(maxsize=2)
def proxy_batch(settings: ProxySettings) -> ProxyBatch:
    """The batch of ``settings``, made once per process (reading CIFAR-10 is the slow part)."""
    if settings.data is not None:
        return cifar10_batch(settings.data, settings.batch_size, settings.seed)
    return random_batch(settings.batch_size, settings.seed, settings.config)


def score_chunk(
    chunk: Chunk,
    settings: ProxySettings,
    attempt: int,
    device: str | None = None,
    progress: StepProgress | None = None,
) -> dict[str, Any]:
    """Score every cell of ``chunk`` (attempt number ``attempt``, from 1) and return the chunk's
    result document. ``device``: where a worker process runs it (else ``settings.device``); a
    worker process also takes ``settings.threads``."""
    if device is not None and settings.threads is not None:
        torch.set_num_threads(settings.threads)  # a worker process of this work only
    device = device or settings.device
    scorer = ProxyScorer(settings.proxies, proxy_batch(settings), settings.config, settings.seed, torch.device(device))
    scores: dict[str, list[float | int]] = {name: [] for name in settings.proxies}
    for number, spec in enumerate(chunk.specs, 1):
        for name, value in scorer.score(spec).items():
            scores[name].append(value)
        if progress is not None:
            progress(chunk, number, len(chunk.cells))
    return {
        "format": FORMAT,
        "status": "ok",
        "chunk": chunk.name,
        "module_hashes": chunk.module_hashes,
        "attempt": attempt,
        "device": device,
        "host": platform.node(),
        "nbcompile": __version__,
        "scores": scores,
        "seconds": scorer.seconds,
    }


def failed_chunk(chunk: Chunk, settings: ProxySettings, errors: list[str]) -> dict[str, Any]:
    """The document of a chunk that failed every attempt."""
    return {
        "format": FORMAT,
        "status": "failed",
        "chunk": chunk.name,
        "module_hashes": chunk.module_hashes,
        "errors": errors,
    }


class ChunkFolder:
    """The work folder: ``settings.json``, then ``<chunk>.json`` for every chunk scored and
    ``<chunk>.failed.json`` for one that failed every attempt, each written atomically. A chunk
    counts as finished once its ``.json`` exists: a rerun retries the failed ones."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def ok_path(self, chunk: Chunk) -> Path:
        return self.root / f"{chunk.name}.json"

    def failed_path(self, chunk: Chunk) -> Path:
        return self.root / f"{chunk.name}.failed.json"

    def claim(self, identity: dict[str, Any], flag: str) -> None:
        """Record ``identity`` in a new work folder, or check that an existing one holds chunks of
        the same settings (ConfigError naming the first difference)."""
        path = self.root / SETTINGS_FILE
        if path.is_file():
            try:
                recorded = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                recorded = None
            if not isinstance(recorded, dict):
                raise ConfigError(f"{flag}: {path} is not a proxies work folder's settings; remove {self.root}")
            differing = [key for key in identity if recorded.get(key) != identity[key]]
            if differing:
                raise ConfigError(
                    f"{flag}: the work folder {self.root} holds chunks scored with other settings "
                    f"({differing[0]} differs); remove it or write to another file"
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(identity, indent=1) + "\n")

    def is_finished(self, chunk: Chunk) -> bool:
        return self.ok_path(chunk).is_file()

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files a killed run left behind; returns how many."""
        return remove_stale_temporaries(self.root)

    def write(self, chunk: Chunk, result: dict[str, Any]) -> Path:
        """Write a chunk's document (a success replaces an earlier failure's)."""
        ok = result["status"] == "ok"
        path = self.ok_path(chunk) if ok else self.failed_path(chunk)
        write_atomic(path, json.dumps(result, indent=1) + "\n")  # NaN and ±Infinity as Python writes them
        if ok:
            self.failed_path(chunk).unlink(missing_ok=True)
        return path

    def read(self, chunk: Chunk) -> dict[str, Any]:
        """The document of a scored chunk, checked against the chunk's cells."""
        path = self.ok_path(chunk)
        result = read_json_document(path, "a proxies chunk", FORMAT)
        if result.get("module_hashes") != chunk.module_hashes:
            raise DatasetError(f"{path}: holds other cells than {chunk.name}; remove {self.root}")
        return result


@dataclass
class AssembledTable:
    """The rows of the chunks scored, in table order, what their scoring took, and the cells of
    the chunks not scored."""

    rows: list[tuple[str, dict[str, float | int]]]
    seconds: dict[str, float]
    missing: list[str]


def assemble(chunks: Iterable[Chunk], folder: ChunkFolder, proxies: Sequence[str]) -> AssembledTable:
    """The table's rows from the scored chunks in ``folder``."""
    table = AssembledTable([], {}, [])
    for chunk in chunks:
        if not folder.is_finished(chunk):
            table.missing.extend(chunk.module_hashes)
            continue
        result = folder.read(chunk)
        for row, module_hash in enumerate(result["module_hashes"]):
            table.rows.append((module_hash, {name: result["scores"][name][row] for name in proxies}))
        for name, value in result["seconds"].items():
            table.seconds[name] = table.seconds.get(name, 0.0) + value
    return table
