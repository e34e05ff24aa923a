"""The algorithms that draw cells themselves: random search, regularized evolution, local search.

Random search and regularized evolution follow the NAS-Bench-101 notebook step by step (upstream's
``NASBench.ipynb``); evolution also has the paper's settings (population 100, tournament 10, one
edge or op changed per mutation). Local search is the NASLib/naszilla kind. Each draws only
cells worth a query (:attr:`SearchContext.is_new`): drawing is free, so cells outside the dataset,
or already queried when de-duplicating, are drawn again rather than charged.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

import numpy as np

from nbcompile.search.optimizer import GeneratorOptimizer, Optimizer, Proposal, SearchContext, Steps, fresh
from nbcompile.search.specs import mutate_one, mutate_spec, neighbours, random_spec
from nbcompile.space.spec import ModelSpec


def _is_new(context: SearchContext) -> Callable[[ModelSpec], bool]:
    """Worth a query at the search's epoch budget."""
    return functools.partial(context.is_new, epochs=context.options.epochs)


def _draw(context: SearchContext, draw: Callable[[], ModelSpec]) -> Proposal:
    """A proposal of the first drawn cell worth a query."""
    return Proposal(fresh(draw, _is_new(context), context.queries()), context.options.epochs)


def random_search(context: SearchContext) -> Optimizer:
    """Query uniformly random valid cells."""
    rng = np.random.default_rng(context.seed)

    def steps() -> Steps:
        while True:
            yield _draw(context, lambda: random_spec(rng))

    return GeneratorOptimizer(steps())


def regularized_evolution(context: SearchContext) -> Optimizer:
    """Aging evolution (Real et al. 2019), as in the notebook: a random population, then the best
    of a tournament (drawn without replacement) is mutated; the child joins, the oldest leaves."""
    options = context.options
    rng = np.random.default_rng(context.seed)
    sampler = random.Random(context.seed)  # tournament draws, apart from the spec generator
    if options.mutation == "single":
        mutate = mutate_one
    else:
        mutate = functools.partial(mutate_spec, mutation_rate=options.mutation_rate)

    def steps() -> Steps:
        population: list[tuple[float, ModelSpec]] = []
        for _ in range(options.population_size):
            proposal = _draw(context, lambda: random_spec(rng))
            population.append(((yield proposal).validation_accuracy, proposal.spec))
        while True:
            tournament = sampler.sample(population, min(options.tournament_size, len(population)))
            parent = max(tournament, key=lambda member: member[0])[1]
            proposal = _draw(context, functools.partial(mutate, parent, rng))
            population.append(((yield proposal).validation_accuracy, proposal.spec))
            population.pop(0)

    return GeneratorOptimizer(steps())


def local_search(context: SearchContext) -> Optimizer:
    """Hill climbing: query every neighbour (one edge or one op changed) of the current cell in a
    random order and move to the best if it beats the current one; restart from a random cell at a
    local optimum."""
    rng = np.random.default_rng(context.seed)
    epochs = context.options.epochs
    is_new = _is_new(context)

    def steps() -> Steps:
        while True:
            current = _draw(context, lambda: random_spec(rng))
            current_valid = (yield current).validation_accuracy
            current_spec = current.spec
            while True:
                candidates = [n for n in neighbours(current_spec) if is_new(n)]
                rng.shuffle(candidates)
                scored = []
                for i, neighbour in enumerate(candidates):
                    scored.append(((yield Proposal(neighbour, epochs)).validation_accuracy, i, neighbour))
                if not scored:
                    break
                best_valid, _, best = max(scored, key=lambda item: (item[0], -item[1]))
                if best_valid <= current_valid:
                    break
                current_spec, current_valid = best, best_valid

    return GeneratorOptimizer(steps())
