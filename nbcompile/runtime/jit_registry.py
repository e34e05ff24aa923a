"""A guard against a torch bug that makes ``torch.jit.script`` fail at random after ``torch.compile``.

TorchScript keeps a table of "builtin" functions keyed by ``id(function)``
(``torch.jit._builtins._register_builtin``), without holding a reference to the function. torch
registers operator objects there as it creates them, then replaces some of them: defining an
overload with ``torch.library`` refreshes the operator's packet (``torch._ops._refresh_packet``),
and the old operator object is freed while its id stays in the table. ``torch.compile`` and
``torch.export`` import modules that do this (``torch.ao.quantization.fx._decomposed``).

CPython reuses the address of a freed object for the next object of a fitting size. When that
object is a module attribute, ``torch.jit.script`` finds its id in the table, takes the attribute
for a builtin function, and fails, e.g. on ``Conv2d._reversed_padding_repeated_twice``::

    RuntimeError: builtin cannot be used as a value: ... F.pad(input, self._reversed_padding_repeated_twice, ...)

Whether it happens depends on the allocation history of the process, so it shows as a flaky
failure of whichever ``torch.jit.script`` call comes first after a compilation.

:func:`keep_registered_builtins_alive` makes every later registration hold its function, so that
a registered id is never reused. ``nbcompile.runtime`` installs it on import; ids freed before
that cannot be told from live ones, so import ``nbcompile.runtime`` (or anything that loads
models) before the first ``torch.compile`` of a process that also scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.jit._builtins as jit_builtins

#: Marks the wrapper, so that installing twice wraps once.
_KEEPS_ALIVE = "_nbcompile_keeps_registered_alive"


def keep_registered_builtins_alive() -> None:
    """Wrap ``torch.jit._builtins._register_builtin`` so that it keeps each function it registers
    alive (as torch already does for the builtins it registers at start-up). Idempotent."""
    register = jit_builtins._register_builtin
    if getattr(register, _KEEPS_ALIVE, False):
        return
    kept: list[Any] = []

    def register_and_keep(fn: Callable[..., Any], op: str) -> None:
        kept.append(fn)
        register(fn, op)

    setattr(register_and_keep, _KEEPS_ALIVE, True)
    register_and_keep.__doc__ = register.__doc__
    jit_builtins._register_builtin = register_and_keep
