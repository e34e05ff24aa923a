"""What runs in torch: the layers, the graph-walking oracle network, the loader of generated
files, ``optimize`` (the fastest inference and training paths), AOT packages (``aot``) and the
device helpers (``device``: dtype names, autocast, synchronize, seeded initialisation).
Depends on ``compiler`` and ``space``.

Importing it guards ``torch.jit.script`` against a torch bug that made it fail at random after
``torch.compile`` (see :mod:`nbcompile.runtime.jit_registry`).
"""

from nbcompile.runtime.jit_registry import keep_registered_builtins_alive

keep_registered_builtins_alive()
