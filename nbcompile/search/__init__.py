"""Dataset-backed architecture search on NAS-Bench-101.

``specs`` (random cells, mutations, neighbourhoods), ``algorithms`` (random search, regularized
evolution, local search), ``experiment`` (repeats × algorithms on several processes, summaries,
JSON), ``plots`` (the notebook's figures).
"""

from nbcompile.search.algorithms import (
    ALGORITHMS,
    Budget,
    SearchOptions,
    SearchResult,
    local_search,
    random_search,
    regularized_evolution,
)

__all__ = [
    "ALGORITHMS",
    "Budget",
    "SearchOptions",
    "SearchResult",
    "local_search",
    "random_search",
    "regularized_evolution",
]
