"""The NAS-Bench-101 search space: ops and limits, cell specs and pruning, the module hash and
canonical labeling, enumeration of every cell, and cell files. Depends on no other layer."""
