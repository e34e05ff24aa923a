"""Exceptions raised by nbcompile."""

from __future__ import annotations


class SpecError(ValueError):
    """A cell spec is malformed: not a square 0/1 upper-triangular matrix with a matching op list."""


class OutOfDomainError(ValueError):
    """A well-formed cell lies outside the NAS-Bench-101 search space (after pruning)."""


class ConfigError(ValueError):
    """A network configuration value is not usable (e.g. too few channels for the cell)."""
