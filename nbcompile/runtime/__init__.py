"""What runs in torch: the layers, the graph-walking oracle network, and the loader of generated
files. Depends on ``compiler`` and ``space``."""
