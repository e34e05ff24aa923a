"""What runs in torch: the layers, the graph-walking oracle network, the loader of generated
files, ``optimize`` (the fastest inference and training paths) and AOT packages (``aot``).
Depends on ``compiler`` and ``space``."""
