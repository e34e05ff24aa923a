"""Searches (nbcompile.search) on synthetic fixtures: the same run for a seed, budgets, selection
by validation only, mutation and neighbours, deduplication, experiments whatever the workers, and
datasets with holes in them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as parquet
import pytest
from cli_runner import invoke

from nbcompile.errors import DatasetError
from nbcompile.nasbench import NASBench
from nbcompile.nasbench.tfrecord import frame
from nbcompile.nasbench.writer import encode_record
from nbcompile.search import Budget, SearchOptions, local_search, optimizer, random_search, regularized_evolution
from nbcompile.search.experiment import Experiment, run_experiment, summarize
from nbcompile.search.specs import mutate_spec, neighbours, random_spec
from nbcompile.space.enumeration import enumerate_cells, sample_cells
from nbcompile.space.spec import ModelSpec
from nbcompile.synthetic.fixture import ONLY_108, fixture_records, write_fixture

ALGORITHMS = [random_search, regularized_evolution, local_search]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Every cell of up to 5 vertices (2,532) plus a spread of bigger ones: searches mostly hit."""
    cells = list(enumerate_cells(max_vertices=5, workers=1)) + sample_cells(300)
    path = tmp_path_factory.mktemp("search") / "search_synthetic.tfrecord"
    write_fixture(path, cells, ONLY_108)
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("search_cache")


@pytest.fixture
def bench(dataset, cache_dir) -> NASBench:
    """A fresh NASBench (budget counters at zero) from the module's cache."""
    return NASBench(dataset, cache_dir=cache_dir)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_deterministic_for_a_seed(bench, algorithm) -> None:
    budget = Budget(60, "queries")
    first = algorithm(bench, budget, seed=5)
    second = algorithm(bench, budget, seed=5)
    other = algorithm(bench, budget, seed=6)
    assert first.to_json() == second.to_json()
    assert first.queried_hashes != other.queried_hashes


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_budget_accounting(bench, algorithm) -> None:
    bench.query(bench.spec_of(next(iter(bench.hash_iterator()))))  # the caller's own spending and sampling
    counters, state = bench.get_budget_counters(), bench._rng.getstate()
    result = algorithm(bench, Budget(3e5), seed=1)
    assert result.times[-1] == pytest.approx(sum(result.training_times))
    assert result.times[-1] > 3e5 and result.times[-2] <= 3e5  # stops at the first query past the budget
    assert len(result.times) == len(result.best_valids) == len(result.best_tests) == result.queries + 1
    assert bench.get_budget_counters() == counters and bench._rng.getstate() == state  # left as it was
    counted = algorithm(bench, Budget(25, "queries"), seed=1)
    assert counted.queries == 25  # a budget of N queries ends with the N-th


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_selection_uses_validation_never_test(bench, algorithm, monkeypatch) -> None:
    """Scramble test accuracies: the cells a run picks and queries must not change."""
    budget = Budget(80, "queries")
    reference = algorithm(bench, budget, seed=3)
    original = NASBench.query

    def scrambled(self, spec, *args, **kwargs):
        data = original(self, spec, *args, **kwargs)
        data["test_accuracy"] = float(np.random.default_rng().random())
        return data

    monkeypatch.setattr(NASBench, "query", scrambled)
    run = algorithm(bench, budget, seed=3)
    assert run.queried_hashes == reference.queried_hashes and run.best_valids == reference.best_valids


def test_trajectory_reports_the_test_accuracy_of_the_best_validation_cell(bench) -> None:
    result = random_search(bench, Budget(100, "queries"), seed=2, options=SearchOptions(mean_of_repeats=True))
    best = int(np.argmax(result.best_valids))
    assert result.best_hash == result.queried_hashes[result.best_valids.index(result.best_valids[-1]) - 1]
    mean = bench.query(bench.spec_of(result.best_hash), reduce="mean")
    assert result.best_valids[best] == pytest.approx(mean["validation_accuracy"])
    assert result.best_tests[-1] == pytest.approx(mean["test_accuracy"])


def test_mutation_works_on_the_unpruned_spec_and_stays_valid() -> None:
    rng = np.random.default_rng(0)
    # vertex 3 is pruned (no path to the output), yet mutations may reconnect it
    matrix = [
        [0, 1, 0, 1, 0, 0, 0],
        [0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
        [0] * 7,
    ]
    parent = ModelSpec(matrix, ["input", "conv3x3", "conv1x1", "maxpool3x3", "conv3x3", "conv3x3", "output"])
    assert parent.num_vertices == 4
    children = [mutate_spec(parent, rng) for _ in range(300)]
    assert all(child.is_valid() and len(child.original_ops) == 7 for child in children)
    assert any(3 in child.kept_vertices for child in children)  # the pruned vertex came back
    for child in children[:50]:
        differences = sum(a != b for a, b in zip(child.original_ops, parent.original_ops))
        assert all(op in ("input", "output") or op.endswith(("relu", "3x3")) for op in child.original_ops)
        assert differences <= 5
    # rate 0 keeps the parent
    assert mutate_spec(parent, rng, mutation_rate=0.0).to_dict() == parent.to_dict()


def test_random_spec_and_neighbours() -> None:
    rng = np.random.default_rng(1)
    specs = [random_spec(rng) for _ in range(200)]
    assert all(s.is_valid() and len(s.original_ops) == 7 for s in specs)
    assert len({s.module_hash for s in specs}) > 100  # many random cells prune to the same small ones
    spec = specs[0]
    around = neighbours(spec)
    assert around and len({n.module_hash for n in around}) == len(around)
    assert spec.module_hash not in {n.module_hash for n in around}
    for n in around:
        edges = sum(
            a != b for ra, rb in zip(n.original_matrix_tuple, spec.original_matrix_tuple) for a, b in zip(ra, rb)
        )
        ops = sum(a != b for a, b in zip(n.original_ops_tuple, spec.original_ops_tuple))
        assert edges + ops == 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_deduplication_never_queries_a_hash_twice(bench, algorithm) -> None:
    result = algorithm(
        bench, Budget(150, "queries"), seed=4, options=SearchOptions(deduplicate=True, population_size=20)
    )
    assert len(set(result.queried_hashes)) == len(result.queried_hashes) == 150
    plain = algorithm(bench, Budget(150, "queries"), seed=4, options=SearchOptions(population_size=20))
    if algorithm is regularized_evolution:
        assert len(set(plain.queried_hashes)) < len(plain.queried_hashes)  # evolution repeats itself


def test_experiment_runs_are_independent_of_workers(dataset, tmp_path) -> None:
    experiment = Experiment(
        str(dataset),
        ("random", "evolution"),
        2,
        Budget(30, "queries"),
        7,
        SearchOptions(population_size=10),
        str(tmp_path),
    )
    one = run_experiment(experiment, workers=1)
    two = run_experiment(experiment, workers=2)
    assert [r.to_json() for r in one] == [r.to_json() for r in two]
    assert len({r.seed for r in one}) == 4
    rows = summarize(one)
    assert [row["algorithm"] for row in rows] == ["random", "evolution"]
    finals = [r.best_tests[-1] for r in one if r.algorithm == "random"]
    assert rows[0]["final_test_mean"] == pytest.approx(np.mean(finals))
    with pytest.raises(ValueError, match="unknown algorithm 'bogus'"):
        Experiment(str(dataset), ("bogus",))


def test_experiments_keep_no_dataset_in_the_parent(small_only108, tmp_path) -> None:
    from nbcompile.search import experiment as experiment_module

    experiment = experiment_module.Experiment(
        str(small_only108), ("random",), 2, Budget(3, "queries"), 0, SearchOptions(), str(tmp_path)
    )
    for workers in (1, 2):
        results = experiment_module.run_experiment(experiment, workers)
        assert [r.queries for r in results] == [3, 3]
        assert experiment_module._worker_dataset == {}  # the workers' own


def test_forked_workers_use_the_parents_open_dataset(small_only108, tmp_path, monkeypatch) -> None:
    """A forked pool worker runs its trials on the dataset the parent has open, and never opens it."""
    import multiprocessing

    from nbcompile.search import experiment as experiment_module

    if multiprocessing.get_start_method() != "fork":
        pytest.skip("workers are not forked here: they open the dataset from its cache")
    experiment = experiment_module.Experiment(
        str(small_only108), ("random", "evolution"), 2, Budget(3, "queries"), 0, SearchOptions(), str(tmp_path)
    )
    opened = NASBench(small_only108, cache_dir=tmp_path)

    def refuse(*args, **kwargs) -> None:
        raise AssertionError("a forked worker opened the dataset again")

    monkeypatch.setattr(experiment_module, "NASBench", refuse)  # the workers inherit the patch
    forked = experiment_module.run_experiment(experiment, workers=2, dataset=opened)
    in_process = experiment_module.run_experiment(experiment, workers=1, dataset=opened)
    assert [result.to_json() for result in forked] == [result.to_json() for result in in_process]
    assert experiment_module._worker_dataset == {}


# --- datasets with holes: cells without runs, NaN training times, a space used up ---------------
def test_search_skips_cells_without_runs_and_always_ends(missing_runs, tmp_path) -> None:
    path, cells = missing_runs
    dataset = NASBench(path, cache_dir=tmp_path, workers=1)
    options = SearchOptions(mean_of_repeats=True, epochs=4)
    result = random_search(dataset, Budget(2e4), seed=0, options=options)
    assert cells[0].module_hash not in result.queried_hashes
    assert result.times[-1] > 2e4 and all(t > 0 for t in result.training_times)
    assert not any(math.isnan(v) for v in result.best_valids)  # cells[1]'s NaN accuracies are never the best
    out = tmp_path / "out"
    run = invoke(
        [
            "search",
            "--dataset",
            str(path),
            "--cache-dir",
            str(tmp_path),
            "--out",
            str(out),
            "--epochs",
            "4",
            "--mean",
            "--budget",
            "2e4",
            "--repeats",
            "2",
            "--algo",
            "random,local",
            "--workers",
            "1",
        ]
    )
    assert run.exit_code == 0, run.output
    queried = parquet.read_table(out / "evaluations.parquet").column("module_hash").to_pylist()
    assert queried and cells[0].module_hash not in queried


def test_search_refuses_a_time_budget_it_cannot_charge(tmp_path) -> None:
    """A cell whose training time is NaN: a one-line error naming it, never an endless run."""
    cells = list(enumerate_cells(max_vertices=3, workers=1))
    payloads = []
    for record in fixture_records(cells, (108,)):
        evaluations = list(record.metrics.evaluation_data)
        evaluations[2] = type(evaluations[2])(
            108.0,
            float("nan"),
            *[
                getattr(evaluations[2], f)
                for f in ("train_accuracy", "validation_accuracy", "test_accuracy", "checkpoint_path")
            ],
        )
        metrics = type(record.metrics)(
            tuple(evaluations), record.metrics.trainable_parameters, record.metrics.total_time
        )
        payloads.append(
            encode_record(type(record)(record.module_hash, 108, record.adjacency, record.operations, metrics))
        )
    path = tmp_path / "nan_time_synthetic.tfrecord"
    path.write_bytes(b"".join(frame(p) for p in payloads))
    dataset = NASBench(path, cache_dir=tmp_path, workers=1)
    with pytest.raises(DatasetError, match="has training time nan at 108 epochs"):
        random_search(dataset, Budget(1e6), seed=0)
    counted = random_search(dataset, Budget(5, "queries"), seed=0)  # a query budget needs no times
    assert counted.queries == 5


def test_dedupe_search_that_uses_up_the_dataset_ends_with_what_it_found(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(optimizer, "FRESH_ATTEMPTS", 2000)
    cells = list(enumerate_cells(max_vertices=3, workers=1))
    path = tmp_path / "tiny_synthetic.tfrecord"
    write_fixture(path, cells, ONLY_108)
    dataset = NASBench(path, cache_dir=tmp_path, workers=1)
    result = random_search(dataset, Budget(1e9), seed=1, options=SearchOptions(deduplicate=True))
    assert sorted(result.queried_hashes) == sorted(c.module_hash for c in cells)
    assert "already queried" in result.note


def test_a_cell_without_a_valid_mutation_is_refused_not_looped_on() -> None:
    from nbcompile.search.specs import mutate_one

    only_edge = ModelSpec([[0, 1], [0, 0]], ["input", "output"])  # removing its one edge disconnects it
    with pytest.raises(ValueError, match=r"no valid mutation of cell .* 2 vertices"):
        mutate_one(only_edge, np.random.default_rng(0))
    # the notebook's mutation may change nothing, so it always finds one: the cell itself
    assert mutate_spec(only_edge, np.random.default_rng(0)).module_hash == only_edge.module_hash
