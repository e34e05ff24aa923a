"""Zero-cost proxies of NAS-Bench-101 cells, computed on the networks NAS-Bench-101 trained.

``scores``: the proxies, each a function of a network and one batch (``params`` and ``flops`` of
the compiler's plan); ``runner``: the batch, the networks built in memory, the scoring loop;
``table``: the Parquet table; ``names``: the proxies' names (no torch). Depends on ``runtime``,
``compiler``, ``space`` and the CIFAR-10 reading of ``train``.
"""
