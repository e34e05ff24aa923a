"""How a synthetic dataset file is told apart from the real dataset: by its name.

A fixture's file name must contain :data:`SYNTHETIC_MARK`; everything that shows a dataset's
numbers (``nbcompile data info``, ``data query``, ``search``) asks :func:`is_synthetic_dataset`
and says so when its accuracies are made up. Imports neither the compiler nor the dataset reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nbcompile.errors import DatasetError

if TYPE_CHECKING:
    from nbcompile.nasbench.api import NASBench

#: A fixture's file name contains this word: its metrics are made up.
SYNTHETIC_MARK = "synthetic"


def is_synthetic_name(path: str | Path) -> bool:
    """True if ``path`` names a synthetic file (its name contains :data:`SYNTHETIC_MARK`)."""
    return SYNTHETIC_MARK in Path(path).name


def is_synthetic_dataset(dataset: NASBench) -> bool:
    """True if ``dataset`` was converted from a synthetic file (for a cache folder: the source
    file its manifest records)."""
    return is_synthetic_name(dataset.source_file)


def check_fixture_name(path: str | Path) -> None:
    """Raise DatasetError unless ``path`` may hold a fixture (its name contains "synthetic")."""
    if not is_synthetic_name(path):
        name = Path(path).name
        raise DatasetError(f"{name}: a fixture's file name must contain {SYNTHETIC_MARK!r} (its metrics are made up)")
