"""Every name the compiler gives: layers and variables inside a cell (shared with the graph-walking
oracle, so that state_dict keys agree), cell classes and attributes, and generated module names
(defaults that differ whenever the generated network differs)."""

from __future__ import annotations

import hashlib
import json
import keyword
import re
from typing import TYPE_CHECKING

from nbcompile.compiler.config import NetworkConfig
from nbcompile.errors import ConfigError
from nbcompile.space.spec import ModelSpec

if TYPE_CHECKING:
    from nbcompile.compiler.plan import NetworkPlan

#: Name of a cell's input inside its forward.
CELL_INPUT = "x"


def projection_name(vertex: int) -> str:
    """Layer projecting the cell input for ``vertex`` (the output vertex included)."""
    return f"proj{vertex}"


def op_name(vertex: int) -> str:
    """Layer computing the op of ``vertex``."""
    return f"op{vertex}"


def vertex_variable(vertex: int) -> str:
    return f"v{vertex}"


def cell_attribute(stack: int, index: int) -> str:
    return f"stack{stack}_cell{index}"


def cell_class_name(in_channels: int, out_channels: int) -> str:
    """The class of every cell from ``in_channels`` to ``out_channels`` channels: ``Cell128To256``."""
    return f"Cell{in_channels}To{out_channels}"


#: The names :func:`cell_class_name` gives.
_CELL_CLASS_NAME = re.compile(r"Cell[0-9]+To[0-9]+")


def is_cell_class_name(name: str) -> bool:
    """True for the name of a generated cell class (how the runtime finds a network's cells)."""
    return _CELL_CLASS_NAME.fullmatch(name) is not None


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def validate_module_name(name: str) -> str:
    """Return ``name`` if it is a usable Python module name, else raise ConfigError."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or keyword.iskeyword(name):
        raise ConfigError(
            f"name {name!r} is not a valid Python module name "
            "(letters, digits and underscores, not starting with a digit, at most 100 characters)",
            "name",
        )
    return name


def network_module_name(
    module_hash: str, built: ModelSpec, config: NetworkConfig, is_canonical: bool | None = None
) -> str:
    """The default name of the network built from ``built`` (already in its final labeling)."""
    base = f"nb101_{module_hash[:12]}"
    if is_canonical is None:
        is_canonical = built.is_canonical()
    if config.is_default() and is_canonical:
        return base
    identity = json.dumps({"matrix": built.pruned_dict(), "config": config.as_dict()}, sort_keys=True).encode()
    return f"{base}_{hashlib.sha256(identity).hexdigest()[:8]}"


def module_name_for(plan: NetworkPlan, name: str | None = None) -> str:
    """The module (file stem) name the plan is written under: ``name`` checked, else the default."""
    if name is not None:
        return validate_module_name(name)
    built_is_canonical = True if plan.canonical_labeling else None
    return network_module_name(plan.module_hash, plan.built, plan.config, built_is_canonical)
