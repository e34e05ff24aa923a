"""Names of generated modules: defaults that differ whenever the generated network differs."""

from __future__ import annotations

import hashlib
import json
import keyword
import re

from nbcompile.config import NetworkConfig
from nbcompile.errors import ConfigError
from nbcompile.spec import ModelSpec

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def validate_module_name(name: str) -> str:
    """Return ``name`` if it is a usable Python module name, else raise ConfigError."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or keyword.iskeyword(name):
        raise ConfigError(
            f"--name {name!r} is not a valid Python module name "
            "(letters, digits and underscores, not starting with a digit, at most 100 characters)"
        )
    return name


def default_module_name(spec: ModelSpec, config: NetworkConfig, canonical: bool = False) -> str:
    """``nb101_<hash prefix>``, with a suffix when the labeling or config is not NB101's own.

    The plain name is kept for the network NAS-Bench-101 trained (canonical labeling, default
    config); any other labeling or config gets a digest of what it builds, so that two different
    networks never share a file name.
    """
    if canonical:
        return network_module_name(spec.module_hash, spec.canonical(), config, is_canonical=True)
    return network_module_name(spec.module_hash, spec, config)


def network_module_name(
    module_hash: str, built: ModelSpec, config: NetworkConfig, is_canonical: bool | None = None
) -> str:
    """The default name of the network built from ``built`` (already in its final labeling)."""
    base = f"nb101_{module_hash[:12]}"
    if is_canonical is None:
        is_canonical = built.is_canonical()
    if config.is_default() and is_canonical:
        return base
    identity = json.dumps(
        {"matrix": built.pruned_dict(), "config": config.as_dict()}, sort_keys=True
    ).encode()
    return f"{base}_{hashlib.sha256(identity).hexdigest()[:8]}"
