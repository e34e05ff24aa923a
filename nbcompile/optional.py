"""Optional dependencies: checked before any work, with a one-line hint naming the extra."""

from __future__ import annotations

import importlib.util

from nbcompile.errors import MissingDependencyError

#: Optional import name → the nbcompile extra that installs it (see pyproject.toml).
EXTRAS: dict[str, str] = {
    "matplotlib": "plot",
    "pandas": "pandas",
    "tensorflow": "tf",
    "ray": "ray",
    "pyarrow": "parquet",
    "smac": "search",
    "optuna": "search",
    "ConfigSpace": "search",
}


def require(module: str, feature: str, extra: str | None = None) -> None:
    """Raise MissingDependencyError unless ``module`` can be imported; nothing is imported here.

    ``feature`` is what needs it, as the user asked for it (``--plot``, ``to_dataframe()``);
    ``extra``: the extra to name, where it is not the module's own in :data:`EXTRAS`.
    """
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken parent package, or a module without a spec
        found = False
    if not found:
        extra = extra or EXTRAS[module]
        raise MissingDependencyError(
            f'{feature} needs {module}, which is not installed: pip install "nbcompile[{extra}]"'
        )
