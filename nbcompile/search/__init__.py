"""Dataset-backed architecture search on NAS-Bench-101.

``protocol`` (what a query returns and costs, the rows of a trial), ``optimizer`` (the ask/tell
interface and the loop of one trial), ``native`` (random search, regularized evolution, local
search), ``algorithms`` (the algorithms by name, one trial), ``specs`` (random cells, mutations,
neighbourhoods), ``experiment`` (trials × algorithms on several processes, summaries, JSON),
``plots`` (figures).
"""

from nbcompile.search.algorithms import (
    ALGORITHMS,
    Algorithm,
    SearchResult,
    local_search,
    random_search,
    regularized_evolution,
    search,
)
from nbcompile.search.optimizer import Optimizer, Proposal, SearchContext, SearchOptions, run_trial
from nbcompile.search.protocol import Benchmark, Budget, Evaluation

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "Benchmark",
    "Budget",
    "Evaluation",
    "Optimizer",
    "Proposal",
    "SearchContext",
    "SearchOptions",
    "SearchResult",
    "local_search",
    "random_search",
    "regularized_evolution",
    "run_trial",
    "search",
]
