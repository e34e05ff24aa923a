"""What ``nbcompile data info`` and ``data query`` print about a dataset."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from nbcompile.nasbench.api import NASBench
from nbcompile.nasbench.tables import METRIC_FIELDS

#: Printed wherever a fixture's numbers are shown (``NASBench.synthetic`` says when).
SYNTHETIC_NOTE = "note: this dataset is SYNTHETIC (a fixture): its accuracies are made up"

_VALID = METRIC_FIELDS.index("final_validation_accuracy")
_TEST = METRIC_FIELDS.index("final_test_accuracy")


def dataset_info(bench: NASBench) -> dict[str, Any]:
    """Counts, parameter range, and the best cells by mean validation and mean test accuracy."""
    tables = bench.tables
    budgets = []
    for column, epochs in enumerate(tables.epochs.tolist()):
        runs = np.asarray(tables.metrics[:, column])
        with np.errstate(invalid="ignore"):
            valid = np.nanmean(runs[:, :, _VALID], axis=1)
            test = np.nanmean(runs[:, :, _TEST], axis=1)
        best_valid = int(np.nanargmax(valid))
        best_test = int(np.nanargmax(test))
        budgets.append(
            {
                "epochs": epochs,
                "runs": int(tables.repeats[:, column].astype(np.int64).sum()),
                "best_mean_validation": {
                    "module_hash": tables.hashes[best_valid].decode(),
                    "validation_accuracy": float(valid[best_valid]),
                    "test_accuracy": float(test[best_valid]),
                },
                "best_mean_test": {
                    "module_hash": tables.hashes[best_test].decode(),
                    "validation_accuracy": float(valid[best_test]),
                    "test_accuracy": float(test[best_test]),
                },
            }
        )
    return {
        "dataset": bench.dataset_file,
        "cache": str(bench.cache_folder) if bench.cache_folder else None,
        "synthetic": bench.synthetic,
        "cells": tables.num_cells,
        "records": tables.num_records,
        "epochs": tables.epochs.tolist(),
        "repeats": np.unique(tables.repeats).tolist(),
        "parameters": {"min": int(tables.parameters.min()), "max": int(tables.parameters.max())},
        "budgets": budgets,
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
        for label, key in (("best mean validation", "best_mean_validation"), ("best mean test", "best_mean_test")):
            best = budget[key]
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
