"""Synthetic NAS-Bench-101 data: files in the official format whose metrics are made up.

``naming`` (the rule that marks a synthetic file by its name: cheap to import, no compiler),
``fixture`` (fixture files with the real parameter counts of each cell's network, lowered by the
compiler, and deterministic made-up accuracies and times), ``landscape`` (how the accuracies are
made up: a hash of the cell, or a function of its structure with noise). Depends on ``nasbench``, ``compiler``
and ``space``; the dataset layer below knows nothing of it.
"""
