"""On the structured synthetic landscape, over the whole space at all four budgets, working
optimizers reach random search's final regret much sooner than random search does, and a broken
one (evolution told the opposite of every validation accuracy) does not. Marker ``study``: the
fixture alone is the whole space × 4 budgets × 3 runs (several minutes on 2 cores), unless
``NBCOMPILE_STUDY_FIXTURE`` names one already written (``nbcompile data fixture FILE --all --full
--landscape structured``).

SMAC and BOHB are not in the comparison: at the budget where the landscape separates the
algorithms (about 2,500 evaluations), a SMAC3 trial takes minutes on 2 cores, and at 1e6 s their
edge over random search is within the spread between trials (1.69x and 1.50x over 10 trials with
one study seed, 0.84x and never over 6 with another)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from nbcompile.nasbench import NASBench
from nbcompile.search import ALGORITHMS, Algorithm, Budget, SearchOptions
from nbcompile.search.experiment import Experiment, local_executor
from nbcompile.search.optimizer import Optimizer, Proposal, SearchContext
from nbcompile.search.protocol import Evaluation, best_mean_test_accuracy
from nbcompile.search.study import run_study, write_report
from nbcompile.space.enumeration import enumerate_cells
from nbcompile.synthetic.fixture import FULL, write_fixture

pytestmark = pytest.mark.study

#: The paper's measure is 500 trials; the claim here needs fewer to be stable.
TRIALS = 50
#: About 2,500 evaluations at 108 epochs: where the structured landscape separates the algorithms
#: (at 2e5 s evolution and random search still tie; at 5e6 s evolution reached random search's
#: final regret 3.7-5.4 times sooner over 20 trials).
BUDGET = 5e6
WORKING = ("evolution",)


class Contrary(Optimizer):
    """Any optimizer, told the opposite of every validation accuracy: it hunts for bad cells."""

    def __init__(self, inner: Optimizer) -> None:
        self.inner = inner

    def ask(self) -> Proposal:
        return self.inner.ask()

    def tell(self, proposal: Proposal, evaluation: Evaluation) -> None:
        flipped = dataclasses.replace(evaluation, validation_accuracy=1.0 - evaluation.validation_accuracy)
        self.inner.tell(proposal, flipped)


def contrary_evolution(context: SearchContext) -> Optimizer:
    return Contrary(ALGORITHMS["evolution"].build(context))


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> tuple[Path, NASBench]:
    given = os.environ.get("NBCOMPILE_STUDY_FIXTURE")
    if given:
        path = Path(given)
    else:
        path = tmp_path_factory.mktemp("space") / "space_structured_synthetic.tfrecord"
        write_fixture(path, enumerate_cells(workers=2), FULL, workers=2, landscape="structured")
    cache = tmp_path_factory.mktemp("space_cache")
    return path, NASBench(path, cache_dir=cache, progress=False)


def test_working_optimizers_reach_random_searchs_final_regret_twice_as_fast(space, tmp_path, monkeypatch) -> None:
    path, dataset = space
    # registered in this process; the pool's workers are forked from it (Linux's default) and see it
    monkeypatch.setitem(
        ALGORITHMS, "contrary", Algorithm("contrary", contrary_evolution, "evolution, told the opposite")
    )
    algorithms = ("random", *WORKING, "contrary")
    experiment = Experiment(
        str(path), algorithms, TRIALS, Budget(BUDGET), seed=0, options=SearchOptions(), cache_dir=None
    )
    run_study(experiment, tmp_path, local_executor(experiment, dataset, 2), dataset)
    report = write_report(experiment, tmp_path, best_mean_test_accuracy(dataset))
    rows = {row["algorithm"]: row for row in report.rows}
    assert all(rows[name]["trials"] == TRIALS and rows[name]["failed"] == 0 for name in algorithms)
    for name in WORKING:
        assert rows[name]["speedup_vs_random"] is not None and rows[name]["speedup_vs_random"] >= 2.0, rows[name]
    assert rows["contrary"]["speedup_vs_random"] is None or rows["contrary"]["speedup_vs_random"] < 1.0
    assert rows["contrary"]["final_regret_mean"] > rows["random"]["final_regret_mean"]
