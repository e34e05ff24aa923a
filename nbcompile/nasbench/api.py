"""``NASBench``: upstream's query API over the columnar cache, without TensorFlow.

Same surface and semantics as ``nasbench.api.NASBench`` (upstream's ``nasbench/api.py``), with its bugs fixed:

* the repeat a query returns is drawn from a private ``random.Random(seed)``, never from the global
  ``random`` module (with the same seed it draws the same repeats upstream would, when nothing else
  touches ``random``);
* ``is_valid`` returns False for cells of more than 7 vertices instead of raising TypeError;
* float and bool matrices hash like int ones, so they find their cell.

A drop-in for upstream: ``from nasbench import api`` becomes ``from nbcompile.nasbench import api``,
and ``api.NASBench``, ``api.ModelSpec`` and ``api.OutOfDomainError`` behave as upstream's do:
``ModelSpec`` accepts ``data_format`` and builds a cell with an op outside the space (``is_valid``
is then False and ``query`` raises OutOfDomainError); ``query`` accepts an integral float epoch
count. Differences: ``fixed_statistics``/``computed_statistics`` are read-only views (an assignment
raises TypeError instead of being lost), and ``visualize()`` draws with matplotlib, not graphviz.
"""

from __future__ import annotations

import copy
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nbcompile.errors import DatasetError, OutOfDomainError, UnknownCellError
from nbcompile.nasbench import cache
from nbcompile.nasbench.convert import convert_file
from nbcompile.nasbench.drawing import draw_cell
from nbcompile.nasbench.tables import METRIC_FIELDS, QUERY_FIELDS, DatasetTables
from nbcompile.nasbench.tfrecord import check_regular_file
from nbcompile.optional import require
from nbcompile.space import ops
from nbcompile.space import spec as _spec
from nbcompile.space.spec import as_model_spec

#: Upstream's ``build_config()`` defaults (``nasbench/lib/config.py``): what the dataset was trained with.
DEFAULT_CONFIG: dict[str, Any] = {
    "train_data_files": [],
    "valid_data_file": "",
    "test_data_file": "",
    "sample_data_file": "",
    "data_format": "channels_last",
    "num_labels": ops.NUM_LABELS,
    "module_vertices": ops.MAX_VERTICES,
    "max_edges": ops.MAX_EDGES,
    "available_ops": list(ops.AVAILABLE_OPS),
    "stem_filter_size": ops.STEM_CHANNELS,
    "num_stacks": ops.NUM_STACKS,
    "num_modules_per_stack": ops.CELLS_PER_STACK,
    "batch_size": 256,
    "train_epochs": ops.TRAIN_EPOCHS,
    "train_seconds": 14400.0,
    "learning_rate": 0.1,
    "lr_decay_method": "COSINE_BY_STEP",
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "max_attempts": 5,
    "intermediate_evaluations": ["0.5"],
    "num_repeats": 3,
    "use_tpu": True,
    "tpu_iterations_per_loop": 100,
    "tpu_num_shards": 2,
}

_HALFWAY = slice(0, 4)
_FINAL = slice(4, 8)
#: ``range(n)`` for every possible repeat count, to draw a repeat from.
_RANGES = tuple(range(n) for n in range(256))


class ModelSpec(_spec.ModelSpec):
    """Upstream's ``api.ModelSpec(matrix, ops, data_format='channels_last')``.

    Like :class:`nbcompile.space.spec.ModelSpec`, except that an op outside the space is accepted,
    as upstream accepts it: :meth:`is_valid` is then False and ``NASBench.query`` raises
    OutOfDomainError. (The compiler's strict spec rejects such an op when it is built.)
    """

    def __init__(self, matrix: Any, ops: Any, data_format: str = "channels_last") -> None:
        super().__init__(matrix, ops, data_format, allow_unknown_ops=True)

    def visualize(self, ax: Any = None) -> Any:
        """Draw the pruned cell with matplotlib and return the Figure (``ax``: draw into these axes).

        Upstream returns a graphviz ``Digraph``; this needs only matplotlib
        (``pip install "nbcompile[plot]"``). A Figure displays itself in Jupyter.
        """
        require("matplotlib", "ModelSpec.visualize()")
        if not self.valid_spec:
            raise OutOfDomainError(f"nothing to draw: {self.domain_error()}")
        return draw_cell(self.pruned_matrix, self.pruned_ops, ax)


def _read_only(what: str) -> TypeError:
    return TypeError(
        f"{what} is a read-only view of the dataset: get_metrics_from_hash() returns copies you can change"
    )


class _ReadOnlyDict(dict):
    """A dict that refuses every change (so that a write is never silently lost); copies are plain."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise _read_only("this statistics dict")

    __setitem__ = __delitem__ = __ior__ = update = setdefault = pop = popitem = clear = _refuse  # type: ignore[assignment]

    def __copy__(self) -> dict:
        return dict(self)

    def __deepcopy__(self, memo: dict) -> dict:
        return {key: copy.deepcopy(value, memo) for key, value in self.items()}


class _ReadOnlyList(list):
    """A list that refuses every change; copies are plain lists."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise _read_only("this statistics list")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse  # type: ignore[assignment]
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse  # type: ignore[assignment]

    def __copy__(self) -> list:
        return list(self)

    def __deepcopy__(self, memo: dict) -> list:
        return [copy.deepcopy(value, memo) for value in self]


class _StatisticsView(Mapping):
    """Read-only, lazily built view of upstream's ``fixed_statistics``/``computed_statistics``.

    Upstream's are plain dicts that a caller could change; here every level refuses a change
    (TypeError, or numpy's ValueError for the adjacency array) instead of dropping it silently.
    """

    def __init__(self, bench: NASBench, item: Callable[[int], Any], name: str) -> None:
        self._bench = bench
        self._item = item
        self._name = name

    def __getitem__(self, module_hash: str) -> Any:
        return self._item(self._bench.row_of(module_hash))

    def __setitem__(self, module_hash: str, value: Any) -> None:
        raise _read_only(self._name)

    def __delitem__(self, module_hash: str) -> None:
        raise _read_only(self._name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._bench.hash_iterator())

    def __len__(self) -> int:
        return len(self._bench)


class NASBench:
    """Query NAS-Bench-101 like ``nasbench.api.NASBench``, from a cached columnar copy.

    ``dataset_file`` is an official ``.tfrecord`` (converted on first use and cached under
    ``cache_dir``, by default the user's cache folder) or a cache folder itself. With
    ``cache=False`` nothing is written.

    A conversion (the first load of a file: 20-50 s for the official ones) prints one line to stderr
    when it starts and one when it ends, as upstream's "Loading dataset from file..." does, and
    shows a progress bar on a terminal or in Jupyter. ``progress=True`` always shows the bar,
    ``progress=False`` prints nothing at all.
    """

    def __init__(
        self,
        dataset_file: str | Path,
        seed: int | None = None,
        *,
        cache_dir: str | Path | None = None,
        cache: bool = True,
        workers: int | None = None,
        progress: bool | None = None,
    ) -> None:
        started = time.perf_counter()
        self.dataset_file = str(dataset_file)
        self.config: dict[str, Any] = {
            key: (list(v) if isinstance(v, list) else v) for key, v in DEFAULT_CONFIG.items()
        }
        self.cache_folder: Path | None = None
        #: The ``.tfrecord`` the tables come from (from the cache's manifest for a cache folder).
        self.source_file = self.dataset_file
        self.converted = False
        self.tables = self._open(Path(dataset_file), cache_dir, cache, workers, progress)
        hashes = self.tables.hashes.tobytes().decode("ascii")
        self._rows: dict[str, int] = {hashes[i : i + 32]: row for row, i in enumerate(range(0, len(hashes), 32))}
        self._epoch_index = {int(e): i for i, e in enumerate(self.tables.epochs.tolist())}
        self.valid_epochs: set[int] = set(self._epoch_index)
        most = int(self.tables.repeats.max()) if self.tables.repeats.size else 0
        #: Runs per (cell, budget) when every one has the same number (the official files: 3), else 0.
        self._all_repeats = most if most and bool((self.tables.repeats == most).all()) else 0
        self._runs = _LazyRows(self.tables.metrics)  # rows already queried, as Python floats
        self._cells: dict[int, tuple[np.ndarray, list[str], int]] = {}  # rows already queried
        self._rng = random.Random(seed)
        # upstream draws random.randint(0, n - 1); choice(range(n)) draws the same number from the
        # same state (both take one _randbelow(n)), with less argument checking
        self._choose = self._rng.choice
        self.training_time_spent = 0.0
        self.total_epochs_spent = 0
        self.history: dict[str, Any] = {}  # upstream's attribute, unused there too; kept for drop-in code
        self.fixed_statistics: Mapping[str, dict[str, Any]] = _StatisticsView(
            self, self._fixed_view, "fixed_statistics"
        )
        self.computed_statistics: Mapping[str, dict[int, list[dict[str, float]]]] = _StatisticsView(
            self, self._computed_view, "computed_statistics"
        )
        self.load_seconds = time.perf_counter() - started

    # --- loading -------------------------------------------------------------------------------
    def _open(self, path: Path, cache_dir, use_cache: bool, workers, progress) -> DatasetTables:
        if path.is_dir():
            loaded = cache.load_tables(path)  # StaleCacheError (a DatasetError) if changed
            if loaded is None:
                raise DatasetError(f"{path}: not an nbcompile dataset cache (no usable manifest.json)")
            self.cache_folder = path
            self.source_file = str(loaded[1].get("source") or path)
            return _plain(loaded[0])
        check_regular_file(path)  # before anything opens it: a FIFO would block
        if use_cache:
            key = cache.SourceKey.of(path)
            root = Path(cache_dir or cache.default_cache_root())
            folder = root / key.folder_name()
            cache.clean_stale_temporaries(root)
            loaded = _load_or_warn(folder, key)
            if loaded is not None:
                self.cache_folder = folder
                return _plain(loaded[0])
        started = time.perf_counter()
        announce = progress is not False
        if announce:
            where = (
                f"; later loads read the cache in {Path(cache_dir or cache.default_cache_root())}" if use_cache else ""
            )
            _say(
                f"nbcompile: loading {path} for the first time: converting it (up to a minute for the full file){where}"
            )
        tables = _convert_with_progress(path, workers, progress)
        self.converted = True
        if announce:
            _say(
                f"nbcompile: loaded {tables.num_cells:,} cells ({tables.num_records:,} records) "
                f"in {time.perf_counter() - started:.1f} s"
            )
        if not use_cache:
            return tables
        try:
            cache.save_tables(tables, folder, path, key, {"convert_seconds": round(time.perf_counter() - started, 3)})
        except OSError as error:  # a read-only cache folder must not stop the user
            warnings.warn(
                f"could not write the dataset cache in {folder.parent}: {error}", cache.CacheWarning, stacklevel=3
            )
            return tables
        # read back memory-mapped, once the converted copy is released: never both in memory at once
        del tables
        reloaded = _load_or_warn(folder, key)
        if reloaded is not None:
            self.cache_folder = folder
            return _plain(reloaded[0])
        # the cache just written does not read back (warned): convert again and keep that in memory
        return _convert_with_progress(path, workers, progress)

    # --- upstream surface ----------------------------------------------------------------------
    def is_valid(self, model_spec: Any) -> bool:
        """True if the (pruned) cell is inside the space; never raises for big cells or unknown ops."""
        return as_model_spec(model_spec, allow_unknown_ops=True).is_valid()

    def query(
        self, model_spec: Any, epochs: int = ops.TRAIN_EPOCHS, stop_halfway: bool = False, reduce: str | None = None
    ) -> dict[str, Any]:
        """Metrics of one training run of the cell, sampled from its repeats; charges the budget.

        A cell with fewer runs than 3 at ``epochs`` (a file of your own training runs) draws from
        the runs it has, each equally likely (upstream draws from 3 and raises IndexError); one
        without runs raises DatasetError naming the cell and the budget.
        ``reduce="mean"`` returns the mean over all repeats instead (and charges its mean time).
        ``module_adjacency``/``module_operations`` are the dataset's stored (canonical) cell.
        """
        column = self._epoch_index.get(epochs) if type(epochs) is int else None
        if column is None:
            column = self._epoch_column(epochs)
            epochs = int(epochs)  # an integral float, as upstream accepts
        row = self._row_of_spec(model_spec)
        part = _HALFWAY if stop_halfway else _FINAL
        if reduce is None:
            count = self._all_repeats or self._run_count(row, column)
            values = self._runs[row][column][self._choose(_RANGES[count])][part]
        elif reduce == "mean":
            count = self._run_count(row, column)  # DatasetError naming the cell and budget if none
            values = self.tables.metrics[row, column, :count, part].mean(axis=0).tolist()
        else:
            raise ValueError(f"reduce must be None or 'mean', got {reduce!r}")
        self.training_time_spent += values[0]
        self.total_epochs_spent += epochs // 2 if stop_halfway else epochs
        result = self._fixed(row)
        result.update(zip(QUERY_FIELDS, values))
        return result

    def get_metrics_from_spec(self, model_spec: Any) -> tuple[dict[str, Any], dict[int, list[dict[str, float]]]]:
        """``(fixed, computed)`` statistics of the cell; the budget is not charged."""
        row = self._row_of_spec(model_spec)
        return self._fixed(row), self._computed(row)

    def get_metrics_from_hash(self, module_hash: str) -> tuple[dict[str, Any], dict[int, list[dict[str, float]]]]:
        """``(fixed, computed)`` statistics for a module hash (fresh copies); UnknownCellError if absent."""
        row = self.row_of(module_hash)
        return self._fixed(row), self._computed(row)

    def hash_iterator(self) -> Iterable[str]:
        """Every module hash, in file order."""
        return self._rows.keys()

    def reseed(self, seed: int | None) -> None:
        """Restart the repeat sampling from ``seed`` (as constructing with ``seed`` would)."""
        self._rng.seed(seed)

    def get_budget_counters(self) -> tuple[float, int]:
        return self.training_time_spent, self.total_epochs_spent

    def reset_budget_counters(self) -> None:
        self.training_time_spent = 0.0
        self.total_epochs_spent = 0

    # --- extras --------------------------------------------------------------------------------
    def missing_epochs(self, wanted: Iterable[int] = ops.EPOCH_BUDGETS) -> list[int]:
        """The budgets of ``wanted`` (by default all four NAS-Bench-101 trained: 4, 12, 36, 108)
        this file has no runs for, ascending: ``[]`` for ``nasbench_full.tfrecord``, ``[4, 12, 36]``
        for ``nasbench_only108.tfrecord``."""
        return sorted(set(wanted) - self.valid_epochs)

    @property
    def has_all_epochs(self) -> bool:
        """Whether the file has every budget NAS-Bench-101 trained (4, 12, 36 and 108 epochs), as
        ``nasbench_full.tfrecord`` does and a multi-fidelity search needs."""
        return not self.missing_epochs()

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, module_hash: object) -> bool:
        return module_hash in self._rows

    def row_of(self, module_hash: str) -> int:
        """The table row of a module hash; UnknownCellError if the dataset does not have it."""
        try:
            return self._rows[module_hash]
        except (KeyError, TypeError):
            raise UnknownCellError(f"module hash {module_hash!r} is not in {self.dataset_file}") from None

    def find_row(self, module_hash: str) -> int | None:
        """The table row of a module hash, or None if the dataset does not have it."""
        return self._rows.get(module_hash)

    def spec_of(self, module_hash: str) -> ModelSpec:
        """The stored (canonical) cell of a module hash, as a ModelSpec (one that can ``visualize()``)."""
        row = self.row_of(module_hash)
        return ModelSpec(self.tables.cell_matrix(row).tolist(), self.tables.cell_ops(row))

    def query_many(
        self,
        model_specs: Iterable[Any],
        epochs: int = ops.TRAIN_EPOCHS,
        stop_halfway: bool = False,
        reduce: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Vectorised :meth:`query`: arrays of ``module_hash``, ``trainable_parameters`` and the four
        metrics, one entry per spec (specs or module hashes). Charges the budget for all of them."""
        column = self._epoch_column(epochs)
        epochs = int(epochs)
        rows = np.array([self._row_of_item(item) for item in model_specs], dtype=np.int64)
        runs = self.tables.metrics[rows, column]  # (n, R, 8)
        if reduce is None:
            picks = np.array(
                [self._choose(_RANGES[self._all_repeats or self._run_count(row, column)]) for row in rows.tolist()],
                dtype=np.int64,
            )
            values = runs[np.arange(len(rows)), picks]
        elif reduce == "mean":
            counts = self.tables.repeats[rows, column].astype(np.int64)
            for row in rows[counts == 0][:1].tolist():
                self._run_count(row, column)  # DatasetError naming the cell and budget
            stored = np.arange(runs.shape[1]) < counts[:, None]  # (n, R): the runs each cell has
            values = np.where(stored[:, :, None], runs, 0.0).sum(axis=1) / np.maximum(counts, 1)[:, None]
        else:
            raise ValueError(f"reduce must be None or 'mean', got {reduce!r}")
        values = values[:, _HALFWAY if stop_halfway else _FINAL]
        self.training_time_spent += float(values[:, 0].sum())
        self.total_epochs_spent += (epochs // 2 if stop_halfway else epochs) * len(rows)
        result = {
            "module_hash": self.tables.hashes[rows].astype(str),
            "trainable_parameters": self.tables.parameters[rows],
        }
        result.update({name: values[:, i] for i, name in enumerate(QUERY_FIELDS)})
        return result

    def to_dataframe(self, epochs: int | None = None):
        """Every run as a pandas DataFrame: one row per (cell, epoch budget, repeat).

        Needs pandas (``pip install "nbcompile[pandas]"``).
        """
        require("pandas", "to_dataframe()")
        import pandas as pd

        columns = range(len(self.tables.epochs)) if epochs is None else [self._epoch_column(epochs)]
        frames = []
        for column in columns:
            runs = np.asarray(self.tables.metrics[:, column])  # (N, R, 8)
            cells, repeats = np.nonzero(np.arange(runs.shape[1]) < self.tables.repeats[:, column, None])
            frame = {
                "module_hash": self.tables.hashes[cells].astype(str),
                "epochs": np.full(len(cells), self.tables.epochs[column]),
                "repeat": repeats,
                "num_vertices": self.tables.num_vertices[cells],
                "trainable_parameters": self.tables.parameters[cells],
            }
            frame.update({name: runs[cells, repeats, i] for i, name in enumerate(METRIC_FIELDS)})
            frames.append(pd.DataFrame(frame))
        return pd.concat(frames, ignore_index=True)

    # --- internals -----------------------------------------------------------------------------
    def _epoch_column(self, epochs: float) -> int:
        """The column of an epoch budget: an int, or an integral float as upstream accepts (108.0)."""
        integral = isinstance(epochs, (int, np.integer)) and not isinstance(epochs, bool)
        integral = integral or (isinstance(epochs, (float, np.floating)) and float(epochs).is_integer())
        column = self._epoch_index.get(int(epochs)) if integral else None
        if column is None:
            raise OutOfDomainError(f"invalid number of epochs {epochs!r}, must be one of {sorted(self.valid_epochs)}")
        return column

    def _run_count(self, row: int, column: int) -> int:
        count = int(self.tables.repeats[row, column])
        if count == 0:
            raise DatasetError(
                f"cell {self.tables.hashes[row].decode()} has no run at {self.tables.epochs[column]} epochs"
            )
        return count

    def _row_of_spec(self, model_spec: Any) -> int:
        spec = model_spec if type(model_spec) is _spec.ModelSpec else as_model_spec(model_spec, allow_unknown_ops=True)
        spec.validate()
        row = self._rows.get(spec.module_hash)
        if row is None:
            raise UnknownCellError(f"cell with module hash {spec.module_hash} is valid but not in {self.dataset_file}")
        return row

    def _row_of_item(self, item: Any) -> int:
        return self.row_of(item) if isinstance(item, str) else self._row_of_spec(item)

    def _cell(self, row: int) -> tuple[np.ndarray, list[str], int]:
        cell = self._cells[row] = (
            self.tables.cell_matrix(row),
            self.tables.cell_ops(row),
            int(self.tables.parameters[row]),
        )
        return cell

    def _fixed(self, row: int) -> dict[str, Any]:
        cell = self._cells.get(row) or self._cell(row)
        return {"module_adjacency": cell[0].copy(), "module_operations": list(cell[1]), "trainable_parameters": cell[2]}

    def _computed(
        self, row: int, mapping: type[dict] = dict, sequence: type[list] = list
    ) -> dict[int, list[dict[str, float]]]:
        """``{epochs: [data point per run]}``, built from ``mapping`` and ``sequence`` types."""
        metrics, repeats = self.tables.metrics, self.tables.repeats
        return mapping(
            (
                epochs,
                sequence(
                    mapping(zip(METRIC_FIELDS, run)) for run in metrics[row, column, : repeats[row, column]].tolist()
                ),
            )
            for epochs, column in self._epoch_index.items()
        )

    def _fixed_view(self, row: int) -> dict[str, Any]:
        """``_fixed(row)``, read-only at every level."""
        fixed = self._fixed(row)
        fixed["module_adjacency"].setflags(write=False)
        return _ReadOnlyDict(fixed, module_operations=_ReadOnlyList(fixed["module_operations"]))

    def _computed_view(self, row: int) -> dict[int, list[dict[str, float]]]:
        """``_computed(row)``, read-only at every level."""
        return self._computed(row, _ReadOnlyDict, _ReadOnlyList)


class _LazyRows(dict):
    """``rows[i]``: row ``i`` of an array as nested Python lists, converted on first use."""

    def __init__(self, array: np.ndarray) -> None:
        super().__init__()
        self._array = array

    def __missing__(self, row: int) -> list[int]:
        value = self[row] = self._array[row].tolist()
        return value


def _load_or_warn(folder: Path, key: cache.SourceKey) -> tuple[DatasetTables, dict[str, Any]] | None:
    """The cache in ``folder``; None, with a one-line warning, if it exists but must not be used."""
    try:
        return cache.load_tables(folder, key)
    except cache.StaleCacheError as error:
        warnings.warn(f"{error}; converting the source again", cache.CacheWarning, stacklevel=4)
        return None


def _plain(tables: DatasetTables) -> DatasetTables:
    """The same arrays as plain ndarrays (memory-mapped ones index faster without the subclass)."""
    return DatasetTables(**{name: array.view(np.ndarray) for name, array in tables.arrays().items()})


def _say(line: str) -> None:
    """One line of feedback on stderr, flushed (seen in pipes and in Jupyter alike)."""
    print(line, file=sys.stderr, flush=True)


def _bar_fits(console: Any) -> bool:
    """Whether a live bar can be drawn: on a terminal, or in Jupyter when ipywidgets is there
    (without it rich would only warn)."""
    if console.is_jupyter:
        import importlib.util

        return importlib.util.find_spec("ipywidgets") is not None
    return console.is_terminal


def _convert_with_progress(path: Path, workers: int | None, progress: bool | None) -> DatasetTables:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    show = _bar_fits(console) if progress is None else progress
    bar = Progress(
        TextColumn(f"converting {path.name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
    )
    with bar:
        task = bar.add_task("records", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return convert_file(path, workers=workers, progress=report if show else None)


__all__ = ["DEFAULT_CONFIG", "ModelSpec", "NASBench", "OutOfDomainError", "UnknownCellError"]
