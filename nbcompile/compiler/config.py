"""Network-level configuration of the NAS-Bench-101 skeleton (upstream's ``lib/model_builder.py``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nbcompile.errors import ConfigError
from nbcompile.space import ops

#: Largest value accepted for any config field: keeps generated code and memory sane.
_MAX_VALUE = {"stem_channels": 4096, "num_stacks": 6, "cells_per_stack": 16, "num_labels": 100_000, "in_channels": 64}


@dataclass(frozen=True)
class NetworkConfig:
    """The skeleton around the cells; the defaults are the network NAS-Bench-101 trained.

    ``stem_channels`` doubles at every stack after the first; ``num_labels`` is the classifier
    width; ``in_channels`` the image channels.
    """

    stem_channels: int = ops.STEM_CHANNELS
    num_stacks: int = ops.NUM_STACKS
    cells_per_stack: int = ops.CELLS_PER_STACK
    num_labels: int = ops.NUM_LABELS
    in_channels: int = 3

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{field.name} must be an integer, got {value!r}", field.name)
            if not 1 <= value <= _MAX_VALUE[field.name]:
                raise ConfigError(f"{field.name} = {value} is out of range 1..{_MAX_VALUE[field.name]}", field.name)

    @classmethod
    def from_kwargs(cls, **overrides: Any) -> NetworkConfig:
        """Build from keyword overrides, rejecting unknown names."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown config option {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**overrides)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def overrides(self) -> dict[str, int]:
        """The fields that differ from the NAS-Bench-101 defaults."""
        default = NetworkConfig()
        return {k: v for k, v in self.as_dict().items() if getattr(default, k) != v}

    def is_default(self) -> bool:
        return not self.overrides()

    def stack_channels(self, stack: int) -> int:
        """Output channels of every cell in ``stack``."""
        return self.stem_channels * 2**stack
