"""Fixture files in exactly the official format, with synthetic metrics.

Every record is real protobuf inside real TFRecord framing; ``trainable_parameters`` is the real
parameter count of the cell's canonical network; accuracies and times are synthetic,
deterministic functions of the cell, the epoch budget and the repeat. They are for tests,
searches and load benchmarks at the real file's scale, never for research conclusions.

Each file is written in one of the byte layouts of :mod:`nbcompile.nasbench.writer`, so that load
benchmarks can cover every layout upstream's reader accepts.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

from nbcompile.compiler.lower import lower
from nbcompile.errors import DatasetError
from nbcompile.fileio import atomic_output
from nbcompile.nasbench.metrics import EvaluationData, ModelMetrics
from nbcompile.nasbench.records import Record
from nbcompile.nasbench.tfrecord import frame
from nbcompile.nasbench.writer import DEFAULT_LAYOUT, LAYOUTS
from nbcompile.parallel import ordered_map
from nbcompile.space.enumeration import EnumeratedCell
from nbcompile.space.ops import EPOCH_BUDGETS, TRAIN_EPOCHS
from nbcompile.space.spec import ModelSpec
from nbcompile.synthetic.landscape import DEFAULT_LANDSCAPE, landscape_named, trained_fraction
from nbcompile.synthetic.naming import check_fixture_name

#: Epoch budgets of the official files.
ONLY_108 = (TRAIN_EPOCHS,)
FULL = EPOCH_BUDGETS
REPEATS = 3
#: Images in each evaluation: 39 batches of 256 (upstream's ``lib/evaluate.py``); accuracies are k / 9984.
EVALUATED_IMAGES = 9984
#: Seconds of training per GFLOP per image for 108 epochs (the Inception-like cell: ~1156 s).
_SECONDS_PER_GFLOP = 1440.0
#: Cells per unit of work when several processes write a fixture.
_BATCH_CELLS = 2000


def _accuracy(value: float) -> float:
    """A float32-representable k / 9984, like the stored accuracies."""
    import numpy as np

    k = round(min(1.0, max(0.0, value)) * EVALUATED_IMAGES)
    return float(np.float32(k / EVALUATED_IMAGES))


def synthetic_metrics(
    cell: EnumeratedCell, parameters: int, flops: int, epochs: int, repeat: int, landscape: str = DEFAULT_LANDSCAPE
) -> ModelMetrics:
    """Deterministic made-up metrics for one training run of ``cell``; the final validation
    accuracy comes from the named landscape (:data:`~nbcompile.synthetic.landscape.LANDSCAPES`)."""
    seed = hashlib.sha256(f"{cell.module_hash}/{epochs}/{repeat}".encode()).digest()
    rng = random.Random(seed)
    final_valid = landscape_named(landscape).final_validation(cell, parameters, epochs, rng)
    progress = trained_fraction(epochs)
    halfway_valid = final_valid - 0.08 * (1.0 - progress) - 0.01
    seconds = _SECONDS_PER_GFLOP * flops / 1e9 * epochs / TRAIN_EPOCHS * rng.uniform(0.97, 1.03)

    def evaluation(epoch: float, time: float, valid: float) -> EvaluationData:
        return EvaluationData(
            current_epoch=epoch,
            training_time=float(time),
            train_accuracy=_accuracy(valid + 0.06),
            validation_accuracy=_accuracy(valid),
            test_accuracy=_accuracy(valid - 0.006 + rng.gauss(0.0, 0.002)),
            checkpoint_path="",
        )

    runs = (
        evaluation(0.0, 0.0, 0.1),
        evaluation(epochs / 2, seconds / 2, halfway_valid),
        evaluation(float(epochs), seconds, final_valid),
    )
    return ModelMetrics(runs, parameters, seconds * 1.25)


def fixture_records(
    cells: Iterable[EnumeratedCell], epochs: tuple[int, ...] = ONLY_108, landscape: str = DEFAULT_LANDSCAPE
) -> Iterator[Record]:
    """Records for every cell × epoch budget × repeat, cell by cell, with accuracies from ``landscape``."""
    landscape_named(landscape)  # an unknown name fails here, before the first cell
    for cell in cells:
        plan = lower(ModelSpec(cell.matrix, cell.ops))
        adjacency = "".join(str(v) for row in cell.matrix for v in row)
        for budget in epochs:
            for repeat in range(REPEATS):
                metrics = synthetic_metrics(cell, plan.trainable_parameters, plan.flops, budget, repeat, landscape)
                yield Record(cell.module_hash, budget, adjacency, cell.ops, metrics)


def _framed_batch(
    cells: list[EnumeratedCell], epochs: tuple[int, ...], layouts: tuple[str, ...], landscape: str
) -> list[tuple[bytes, int]]:
    records = list(fixture_records(cells, epochs, landscape))
    return [(b"".join(frame(LAYOUTS[name].payload(r)) for r in records), len(records)) for name in layouts]


def _batches(cells: Iterable[EnumeratedCell], size: int) -> Iterator[list[EnumeratedCell]]:
    iterator = iter(cells)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def write_fixture(
    path: str | Path,
    cells: Iterable[EnumeratedCell],
    epochs: tuple[int, ...] = ONLY_108,
    workers: int = 1,
    layout: str = DEFAULT_LAYOUT,
    landscape: str = DEFAULT_LANDSCAPE,
) -> int:
    """Write a fixture file atomically; returns the number of records.

    The file name must contain "synthetic" (:mod:`nbcompile.synthetic.naming`), so that nobody
    mistakes it for the real dataset.
    With ``workers`` > 1, batches of cells are lowered and encoded in that many processes
    (the file is the same, byte for byte). ``landscape`` names how accuracies are made up
    (:data:`~nbcompile.synthetic.landscape.LANDSCAPES`: "hashed", the default, or "structured").
    """
    return write_fixtures({layout: path}, cells, epochs, workers, landscape)


def write_fixtures(
    paths: Mapping[str, str | Path],
    cells: Iterable[EnumeratedCell],
    epochs: tuple[int, ...] = ONLY_108,
    workers: int = 1,
    landscape: str = DEFAULT_LANDSCAPE,
) -> int:
    """Write the same records in several layouts (``{layout name: path}``), lowering each cell once."""
    landscape_named(landscape)
    for name, path in paths.items():
        if name not in LAYOUTS:
            raise DatasetError(f"unknown layout {name!r}; the layouts are {', '.join(LAYOUTS)}")
        check_fixture_name(path)
    names = tuple(paths)
    count = 0
    tasks = ((batch, epochs, names, landscape) for batch in _batches(cells, _BATCH_CELLS))
    with ExitStack() as stack:
        streams = [stack.enter_context(open(stack.enter_context(atomic_output(Path(paths[n]))), "wb")) for n in names]
        for written in ordered_map(_framed_batch, tasks, workers):
            for stream, (data, _) in zip(streams, written):
                stream.write(data)
            count += written[0][1]
    return count
