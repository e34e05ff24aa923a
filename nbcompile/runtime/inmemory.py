"""Generated networks built in memory: the source rendered once and executed once per distinct
cell, without writing or importing a file (for scoring many cells in one process).

The network is the one ``nbcompile compile --canonical`` writes: the cell in the labeling
NAS-Bench-101 stored and trained, so that every labeling of a cell gives the same network, and
the same weights for the same seed (drawn faster: the module's ``nn`` is ``torch.nn`` with
:func:`nbcompile.runtime.sampling.trunc_normal_`, which draws torch's numbers). Classes made here
are not importable by name: such a network does not pickle and cannot be scripted with
``torch.jit.script`` (use a generated file for that).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from nbcompile.compiler.config import NetworkConfig
from nbcompile.compiler.lower import lower
from nbcompile.compiler.plan import NetworkPlan
from nbcompile.compiler.render import render_plan
from nbcompile.runtime.device import seeded
from nbcompile.runtime.sampling import nn_with_fast_init
from nbcompile.space.spec import ModelSpec, as_model_spec


def canonical_plan(spec: Any, config: NetworkConfig | None = None) -> NetworkPlan:
    """The plan of ``spec``'s canonical labeling under ``config``: the same plan, and so the same
    source, for every labeling of a cell."""
    return lower(as_model_spec(spec).validate().canonical(), config or NetworkConfig())


def network_class_from_source(source: str, name: str) -> type[nn.Module]:
    """The ``Network`` class defined by a generated module's ``source``, executed in a fresh
    namespace named ``name`` (not entered in ``sys.modules``), whose ``nn`` then initialises with
    the faster truncated normal that draws the same numbers."""
    namespace: dict[str, Any] = {"__name__": name, "__builtins__": __builtins__}
    exec(compile(source, f"<{name}>", "exec"), namespace)  # our own rendered source, never user text
    if namespace.get("nn") is nn:
        namespace["nn"] = nn_with_fast_init()
    network = namespace.get("Network")
    if not (isinstance(network, type) and issubclass(network, nn.Module)):
        raise ImportError(f"{name}: the source defines no Network class")
    return network


class NetworkBuilder:
    """Builds the generated network of a cell's canonical labeling under one config, in memory.

    Each distinct cell is rendered and executed once; its classes are kept (the ``cache_size``
    most recently used) and shared by every later network of that cell, whatever its labeling.
    """

    def __init__(self, config: NetworkConfig | None = None, cache_size: int = 64) -> None:
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, got {cache_size}")
        self.config = config or NetworkConfig()
        self.cache_size = cache_size
        self._classes: OrderedDict[str, type[nn.Module]] = OrderedDict()
        #: How many sources were rendered and executed (cache misses).
        self.executed = 0

    def plan(self, spec: Any) -> NetworkPlan:
        """The plan of ``spec``'s canonical labeling under this builder's config."""
        return canonical_plan(spec, self.config)

    def network_class(self, spec: Any) -> type[nn.Module]:
        """The ``Network`` class of ``spec``'s canonical labeling (rendered and executed on first use)."""
        model_spec: ModelSpec = as_model_spec(spec).validate()
        key = model_spec.module_hash
        cached = self._classes.get(key)
        if cached is not None:
            self._classes.move_to_end(key)
            return cached
        source = render_plan(self.plan(model_spec), formatter="none")  # executed, not written: black not needed
        network = network_class_from_source(source, f"_nbcompile_inmemory_{key}")
        self.executed += 1
        self._classes[key] = network
        if len(self._classes) > self.cache_size:
            self._classes.popitem(last=False)
        return network

    def build(self, spec: Any, seed: int = 0, device: torch.device | str = "cpu") -> nn.Module:
        """A new network of ``spec``'s canonical labeling, initialised as upstream did with
        torch's CPU generator seeded with ``seed`` (the global generator is left as it was), then
        moved to ``device``: the weights are the same on every device."""
        network_class = self.network_class(spec)
        with seeded(seed):
            network = network_class()
        return network.to(device)
