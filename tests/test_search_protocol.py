"""The benchmark protocol (nbcompile.search.protocol): every answer recomputed from the file by the
independent reader, invalid configurations, budgets, the naszilla mean, the incumbent curve and
the ask/tell loop."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

import numpy as np
import pytest
from reference_reader import METRICS, read

from nbcompile.errors import DatasetError
from nbcompile.nasbench import NASBench
from nbcompile.search import protocol
from nbcompile.search.optimizer import GeneratorOptimizer, Proposal, run_trial
from nbcompile.search.protocol import (
    Benchmark,
    Budget,
    BudgetExhausted,
    Evaluation,
    best_mean_test_accuracy,
    incumbent_curve,
)
from nbcompile.space.spec import ModelSpec

VALID, TIME, TEST = (
    METRICS.index(f"final_{name}") for name in ("validation_accuracy", "training_time", "test_accuracy")
)
#: Eleven edges: outside the space whatever the ops.
TOO_MANY_EDGES = ModelSpec(
    np.triu(np.ones((7, 7), dtype=int), 1).tolist(),
    ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv3x3-bn-relu", "output"],
)


@pytest.fixture(scope="module")
def opened(full: Path, tmp_path_factory) -> NASBench:
    return NASBench(full, cache_dir=tmp_path_factory.mktemp("protocol_cache"), progress=False)


@pytest.fixture(scope="module")
def expected(full: Path) -> dict:
    return read(full.read_bytes())


def test_every_answer_is_the_drawn_run_and_the_mean_test_accuracy(opened, expected) -> None:
    seed = 11
    benchmark = Benchmark(opened, Budget(1e12), "random", 3, seed)
    draws = random.Random(seed)  # upstream's repeat draw: one of the 3 runs, uniformly
    for epochs in (4, 12, 36, 108):
        for module_hash, cell in expected.items():
            evaluation = benchmark.evaluate(opened.spec_of(module_hash), epochs)
            run = cell.runs[epochs][draws.randrange(len(cell.runs[epochs]))]
            assert evaluation.valid and evaluation.module_hash == module_hash and evaluation.epochs == epochs
            assert cell.runs[epochs][evaluation.repeat] == run
            assert evaluation.validation_accuracy == run[VALID]
            assert evaluation.training_time == run[TIME]
            assert evaluation.test_accuracy == pytest.approx(statistics.fmean(r[TEST] for r in cell.runs[108]))
    rows = benchmark.evaluations
    assert [e.index for e in rows] == list(range(len(rows))) and {(e.algorithm, e.trial) for e in rows} == {
        ("random", 3)
    }
    assert [e.cumulative_time for e in rows] == pytest.approx(np.cumsum([e.training_time for e in rows]))


def test_the_regret_reference_is_the_best_mean_test_accuracy_in_the_file(opened, expected) -> None:
    means = [statistics.fmean(r[TEST] for r in cell.runs[108]) for cell in expected.values()]
    assert best_mean_test_accuracy(opened) == pytest.approx(max(means))


def test_the_mean_of_repeats_variant(opened, expected) -> None:
    benchmark = Benchmark(opened, Budget(1e12), mean_of_repeats=True)
    module_hash, cell = next(iter(expected.items()))
    evaluation = benchmark.evaluate(opened.spec_of(module_hash), 36)
    assert evaluation.repeat == -1
    assert evaluation.validation_accuracy == pytest.approx(statistics.fmean(r[VALID] for r in cell.runs[36]))
    assert evaluation.training_time == pytest.approx(statistics.fmean(r[TIME] for r in cell.runs[36]))


def test_invalid_configurations_are_recorded_free_and_never_the_incumbent(opened, expected) -> None:
    benchmark = Benchmark(opened, Budget(2, "queries"))
    smallest = (
        ModelSpec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", op, "output"])
        for op in ("maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")
    )
    absent = next(spec for spec in smallest if spec.module_hash not in expected)
    first = benchmark.evaluate(opened.spec_of(next(iter(expected))))
    for spec in (None, TOO_MANY_EDGES, absent):
        row = benchmark.evaluate(spec)
        assert not row.valid and row.module_hash == "" and row.repeat == -1
        assert row.training_time == 0.0 and row.cumulative_time == first.training_time
        assert row.validation_accuracy == 0.0 and math.isnan(row.test_accuracy)
    assert benchmark.queries == 1  # invalid configurations do not count against a budget in queries
    _, valids, tests = incumbent_curve(benchmark.evaluations)
    assert list(valids) == [first.validation_accuracy] * 4 and list(tests) == [first.test_accuracy] * 4


def test_a_budget_in_time_ends_with_the_query_that_crosses_it_one_in_queries_with_the_last(opened, expected) -> None:
    spec = opened.spec_of(next(iter(expected)))
    benchmark = Benchmark(opened, Budget(1.0))  # every query trains for longer than a second
    with pytest.raises(BudgetExhausted):  # the notebook's rule: the query that crosses the budget counts
        benchmark.evaluate(spec)
    assert len(benchmark.evaluations) == 1 and benchmark.spent == benchmark.evaluations[0].training_time
    counted = Benchmark(opened, Budget(3, "queries"))
    counted.evaluate(spec)
    counted.evaluate(None)  # an invalid configuration is no query
    counted.evaluate(spec)
    with pytest.raises(BudgetExhausted):  # a budget of 3 queries: 3 queries, as naszilla counts them
        counted.evaluate(spec)
    assert counted.queries == 3 and len(counted.evaluations) == 4
    assert Budget(2.5, "queries").is_spent(0.0, 3) and not Budget(2.5, "queries").is_spent(0.0, 2)
    assert Budget(10.0).is_spent(10.5, 1) and not Budget(10.0).is_spent(10.0, 1)


def test_cells_without_runs_at_a_budget_are_invalid_there(missing_runs, tmp_path) -> None:
    path, cells = missing_runs
    dataset = NASBench(path, cache_dir=tmp_path, progress=False)
    benchmark = Benchmark(dataset, Budget(1e12))
    spec = ModelSpec(cells[0].matrix, cells[0].ops)
    assert not benchmark.is_new(spec, 4) and benchmark.is_new(spec, 108)
    assert not benchmark.evaluate(spec, 4).valid and benchmark.evaluate(spec, 108).valid
    with pytest.raises(DatasetError, match="no runs at 12 epochs"):
        benchmark.evaluate(spec, 12)


def test_a_trial_stuck_outside_the_space_ends(opened, monkeypatch) -> None:
    monkeypatch.setattr(protocol, "MAX_CONSECUTIVE_INVALID", 5)
    benchmark = Benchmark(opened, Budget(10, "queries"))

    def never_valid():
        while True:
            yield Proposal(None)

    note = run_trial(GeneratorOptimizer(never_valid()), benchmark)
    assert note and note.startswith("5 invalid configurations in a row") and len(benchmark.evaluations) == 5


def test_deduplication_refuses_a_queried_cell(opened, expected) -> None:
    spec = opened.spec_of(next(iter(expected)))
    benchmark = Benchmark(opened, Budget(10, "queries"), deduplicate=True)
    assert benchmark.is_new(spec)
    benchmark.evaluate(spec)
    assert not benchmark.is_new(spec)
    assert Benchmark(opened, Budget(10, "queries")).is_new(spec)


def _row(index: int, valid: float, test: float, seconds: float, ok: bool = True) -> Evaluation:
    return Evaluation("a", 0, index, "h" if ok else "", 108, 0, valid, test, seconds, 0.0, ok)


def test_incumbent_curve_by_hand() -> None:
    rows = [
        _row(0, 0.0, math.nan, 0.0, ok=False),
        _row(1, 0.80, 0.70, 5.0),
        _row(2, 0.90, 0.85, 5.0),
        _row(3, 0.90, 0.99, 5.0),  # a tie keeps the earlier incumbent
        _row(4, 0.95, 0.60, 5.0, ok=False),  # never the incumbent, whatever it says
        _row(5, 0.85, 0.95, 5.0),
    ]
    _, valids, tests = incumbent_curve(rows)
    assert np.array_equal(valids, [math.nan, 0.80, 0.90, 0.90, 0.90, 0.90], equal_nan=True)
    assert np.array_equal(tests, [math.nan, 0.70, 0.85, 0.85, 0.85, 0.85], equal_nan=True)


def test_tell_must_answer_the_last_ask() -> None:
    def two():
        yield Proposal(None)
        yield Proposal(None)

    optimizer = GeneratorOptimizer(two())
    first = optimizer.ask()
    assert optimizer.ask() is first  # asking again gives the outstanding proposal
    with pytest.raises(ValueError, match="last ask"):
        optimizer.tell(Proposal(None), _row(0, 0.0, math.nan, 0.0, ok=False))
