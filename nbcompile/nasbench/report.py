"""What ``nbcompile data info`` and ``data query`` print about a dataset."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from nbcompile.nasbench.api import NASBench
from nbcompile.nasbench.tables import METRIC_FIELDS

#: Printed under a synthetic dataset's numbers (the callers say when: ``nbcompile.synthetic.naming``).
SYNTHETIC_NOTE = "note: this dataset is SYNTHETIC (a fixture): its accuracies are made up"

_VALID = METRIC_FIELDS.index("final_validation_accuracy")
_TEST = METRIC_FIELDS.index("final_test_accuracy")


def dataset_info(dataset: NASBench, synthetic: bool) -> dict[str, Any]:
    """Counts, parameter range, and per epoch budget the best cells by mean validation and mean
    test accuracy. Means are over the runs each cell has; cells without a run at a budget (or
    whose runs hold NaN) are left out of that budget's ranking, and ``cells_without_runs`` counts
    the former. A budget where no cell has a usable mean reports None as its best cells.
    ``synthetic``: the dataset's metrics are made up (recorded, and noted when formatted)."""
    tables = dataset.tables
    budgets = []
    for column, epochs in enumerate(tables.epochs.tolist()):
        runs = np.asarray(tables.metrics[:, column])
        counts = tables.repeats[:, column].astype(np.int64)
        stored = np.arange(runs.shape[1]) < counts[:, None]
        valid = _mean_of_stored(runs[:, :, _VALID], stored, counts)
        test = _mean_of_stored(runs[:, :, _TEST], stored, counts)
        budgets.append(
            {
                "epochs": epochs,
                "runs": int(counts.sum()),
                "cells_without_runs": int((counts == 0).sum()),
                "best_mean_validation": _best(tables, valid, valid, test),
                "best_mean_test": _best(tables, test, valid, test),
            }
        )
    return {
        "dataset": dataset.dataset_file,
        "cache": str(dataset.cache_folder) if dataset.cache_folder else None,
        "synthetic": synthetic,
        "cells": tables.num_cells,
        "records": tables.num_records,
        "epochs": tables.epochs.tolist(),
        "repeats": np.unique(tables.repeats).tolist(),
        "parameters": {"min": int(tables.parameters.min()), "max": int(tables.parameters.max())},
        "budgets": budgets,
    }


def _mean_of_stored(values: np.ndarray, stored: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per cell, the mean of the runs it has (NaN where it has none); no warnings."""
    total = np.where(stored, values, 0.0).sum(axis=1)
    return np.divide(total, counts, out=np.full(len(counts), np.nan), where=counts > 0)


def _best(tables, ranking: np.ndarray, valid: np.ndarray, test: np.ndarray) -> dict[str, Any] | None:
    """The cell with the highest ``ranking`` (NaN never wins), or None if every entry is NaN."""
    usable = np.flatnonzero(~np.isnan(ranking))
    if not len(usable):
        return None
    row = int(usable[np.argmax(ranking[usable])])
    return {
        "module_hash": tables.hashes[row].decode(),
        "validation_accuracy": float(valid[row]),
        "test_accuracy": float(test[row]),
    }


def format_dataset_info(info: dict[str, Any]) -> str:
    lines = [
        f"dataset     {info['dataset']}",
        f"cache       {info['cache'] or '(not cached)'}",
        f"cells       {info['cells']:,}",
        f"records     {info['records']:,}",
        f"epochs      {', '.join(map(str, info['epochs']))}",
        f"repeats     {', '.join(map(str, info['repeats']))} per cell and budget",
        f"parameters  {info['parameters']['min']:,} .. {info['parameters']['max']:,}",
    ]
    for budget in info["budgets"]:
        if budget["cells_without_runs"]:
            lines.append(
                f"{budget['epochs']:>3} epochs: {budget['cells_without_runs']:,} cells have no run "
                "(left out of the ranking)"
            )
        for label, key in (("best mean validation", "best_mean_validation"), ("best mean test", "best_mean_test")):
            best = budget[key]
            if best is None:
                lines.append(f"{budget['epochs']:>3} epochs, {label + ':':<22} none (no cell has a usable mean)")
                continue
            lines.append(
                f"{budget['epochs']:>3} epochs, {label + ':':<22} {best['module_hash']}  "
                f"validation {best['validation_accuracy']:.4f}  test {best['test_accuracy']:.4f}"
            )
    if info["synthetic"]:
        lines.append(SYNTHETIC_NOTE)
    return "\n".join(lines)


def query_json(result: dict[str, Any], module_hash: str, synthetic: bool) -> str:
    data = {"module_hash": module_hash, **result, "synthetic": synthetic}
    data["module_adjacency"] = result["module_adjacency"].tolist()
    return json.dumps(data, indent=2)


def format_query(result: dict[str, Any], module_hash: str, synthetic: bool) -> str:
    matrix = result["module_adjacency"].tolist()
    lines = [
        f"module_hash           {module_hash}",
        f"module_operations     {', '.join(result['module_operations'])}",
        "module_adjacency      " + "\n                      ".join("".join(map(str, row)) for row in matrix),
        f"trainable_parameters  {result['trainable_parameters']:,}",
    ]
    for key in ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy"):
        lines.append(f"{key:<22}{result[key]:.6g}")
    if synthetic:
        lines.append(SYNTHETIC_NOTE)
    return "\n".join(lines)
