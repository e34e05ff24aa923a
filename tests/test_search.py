"""Dataset-backed searches on a small synthetic fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from strategies import not_loading_lines

from nbcompile.nasbench import NASBench
from nbcompile.search import Budget, SearchOptions, local_search, random_search, regularized_evolution
from nbcompile.search.experiment import Experiment, run_experiment, summarize
from nbcompile.search.specs import mutate_spec, neighbours, random_spec
from nbcompile.space.enumeration import sample_cells
from nbcompile.space.spec import ModelSpec
from nbcompile.synthetic.fixture import ONLY_108, write_fixture

ALGORITHMS = [random_search, regularized_evolution, local_search]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Every cell of up to 5 vertices (2,532) plus a spread of bigger ones: searches mostly hit."""
    from nbcompile.space.enumeration import enumerate_cells

    cells = list(enumerate_cells(max_vertices=5, workers=1)) + sample_cells(300)
    path = tmp_path_factory.mktemp("search") / "search_synthetic.tfrecord"
    write_fixture(path, cells, ONLY_108)
    return path


@pytest.fixture
def bench(dataset, tmp_path_factory) -> NASBench:
    return NASBench(dataset, cache_dir=tmp_path_factory.getbasetemp() / "cache")


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
    assert counted.queries == 26


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
    assert len(set(result.queried_hashes)) == len(result.queried_hashes) == 151
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


def test_cli_search_emits_the_best_cell(dataset, tmp_path) -> None:
    from click.testing import CliRunner

    from nbcompile.cli import main
    from nbcompile.runtime.loader import load_model_class

    cells = tmp_path / "only_known_synthetic.tfrecord"  # every query hits: only cells of <= 4 vertices
    from nbcompile.space.enumeration import enumerate_cells

    write_fixture(cells, list(enumerate_cells(max_vertices=4, workers=1)), ONLY_108)
    out = tmp_path / "out"
    args = [
        "search",
        "--dataset",
        str(cells),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--algo",
        "random,evolution,local",
        "--repeats",
        "2",
        "--budget",
        "40",
        "--budget-kind",
        "queries",
        "--population-size",
        "5",
        "--tournament-size",
        "2",
        "--out",
        str(out),
        "--plot",
        "--emit-best",
        str(tmp_path / "models"),
        "--workers",
        "1",
    ]
    # a tiny space: 4-vertex random cells are rare, so draw from what exists
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.stdout and "evolution" in result.stdout
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == 6 and data["summary"][0]["runs"] == 2
    assert (out / "trajectories.png").read_bytes()[:4] == b"\x89PNG" and (out / "mean_iqr.png").exists()
    model_path = Path(result.stdout.strip().splitlines()[-1])
    best = max(data["runs"], key=lambda r: r["best_valids"][-1])
    bench = NASBench(cells, cache_dir=tmp_path / "cache")
    stored = bench.get_metrics_from_hash(best["best_hash"])[0]["trainable_parameters"]
    network = load_model_class(model_path)()
    assert sum(p.numel() for p in network.parameters()) == stored


def test_cli_search_bad_input(dataset, tmp_path) -> None:
    from click.testing import CliRunner

    from nbcompile.cli import main

    base = ["search", "--dataset", str(dataset), "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o")]
    for extra, message in (
        (["--algo", "bogus"], "unknown algorithm 'bogus'"),
        (["--budget", "-1"], "must be a positive, finite number"),
        (["--epochs", "12"], "invalid number of epochs 12"),
    ):
        result = CliRunner().invoke(main, base + extra)
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert len(not_loading_lines(result.stderr)) == 1  # the one-line error, after the first load's lines
    assert not (tmp_path / "o").exists()
