"""The paper's other optimizers (TPE, SMAC, Hyperband, BOHB, REINFORCE) under the benchmark
protocol: one run per seed, Hyperband's brackets counted by hand, multi-fidelity budgets checked
before any query, invalid configurations told error 1 and never the incumbent; and the paper's
one-change mutation of regularized evolution.

The dataset holds every cell of up to 4 vertices (91 cells) at all four budgets: most cells the
encodings decode to are that small, the rest are recorded invalid, as a cell the file lacks is."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import valid_specs

from nbcompile.errors import DatasetError
from nbcompile.nasbench import NASBench
from nbcompile.search import ALGORITHMS, Budget, SearchOptions, search
from nbcompile.search.algorithms import check_budgets
from nbcompile.search.optimizer import EVOLUTION_SETTINGS
from nbcompile.search.protocol import Benchmark, Evaluation
from nbcompile.search.specs import mutate_one
from nbcompile.space.enumeration import enumerate_cells
from nbcompile.space.spec import ModelSpec
from nbcompile.synthetic.fixture import FULL, write_fixture

MODEL_BASED = ["tpe", "smac", "hyperband", "bohb", "reinforce"]
MULTI_FIDELITY = ["hyperband", "bohb"]


@pytest.fixture(scope="module")
def small_full(tmp_path_factory: pytest.TempPathFactory) -> NASBench:
    """Every cell of up to 4 vertices at 4, 12, 36 and 108 epochs (under a second to write)."""
    folder = tmp_path_factory.mktemp("model_based")
    path = folder / "small_full_synthetic.tfrecord"
    write_fixture(path, enumerate_cells(max_vertices=4, workers=1), FULL)
    return NASBench(path, cache_dir=folder / "cache", progress=False)


def _needs(algorithm: str) -> None:
    for module in ALGORITHMS[algorithm].modules:
        pytest.importorskip(module)


#: One retraining of SMAC's forest per trial (its acquisition search costs seconds here).
FAST = {"smac_retrain_after": 50}


@pytest.mark.parametrize("algorithm", MODEL_BASED)
def test_one_run_per_seed_and_no_files_left(
    small_full: NASBench, algorithm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same seed gives the same run, another seed another; SMAC's temporary folder is gone and
    nothing is written to the working folder."""
    _needs(algorithm)
    temporary, work = tmp_path / "tmp", tmp_path / "work"
    temporary.mkdir()
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.chdir(work)
    options = SearchOptions(encoding="B", **FAST)  # fewer configurations outside the space than A
    budget = Budget(4, "queries")
    first = search(algorithm, small_full, budget, seed=3, options=options)
    second = search(algorithm, small_full, budget, seed=3, options=options)
    other = search(algorithm, small_full, budget, seed=4, options=options)
    assert first.evaluations == second.evaluations
    assert [e.module_hash for e in first.evaluations] != [e.module_hash for e in other.evaluations]
    assert list(temporary.iterdir()) == [] and list(work.iterdir()) == []


@pytest.mark.parametrize("algorithm", MODEL_BASED)
def test_a_trial_at_a_smaller_budget_is_the_start_of_the_same_trial_at_a_larger_one(
    small_full: NASBench, algorithm: str
) -> None:
    """The optimizers never see the budget (SMAC's scenario has no end): a longer trial starts
    with the rows of the shorter one, which is what lets one study answer for smaller budgets."""
    _needs(algorithm)
    options = SearchOptions(encoding="B", **FAST)
    short = search(algorithm, small_full, Budget(8, "queries"), seed=5, options=options).evaluations
    long = search(algorithm, small_full, Budget(30, "queries"), seed=5, options=options).evaluations
    assert long[: len(short)] == short and len(long) > len(short)


def _stages(evaluations: list[Evaluation]) -> list[tuple[int, int]]:
    """(epochs, how many) of each run of consecutive evaluations at the same budget."""
    return [(epochs, len(list(group))) for epochs, group in itertools.groupby(e.epochs for e in evaluations)]


@pytest.mark.parametrize("algorithm", ["hyperband", pytest.param("bohb", marks=pytest.mark.slow)])
def test_budgets_follow_hyperbands_brackets(small_full: NASBench, algorithm: str) -> None:
    """η = 3 from 4 to 108 epochs: bracket 0 runs 27 cells at 4 epochs, the best 9 at 12, 3 at 36,
    1 at 108 (27·3⁰ … 27/3³); bracket 1 starts ⌈4/3·9⌉ = 12 at 12; bracket 2 ⌈4/2·3⌉ = 6 at 36;
    bracket 3 4 at 108; then bracket 0 again. (BOHB runs the same intensifier; slow: its forest.)"""
    _needs(algorithm)
    result = search(algorithm, small_full, Budget(60, "queries"), seed=1, options=SearchOptions(encoding="B"))
    evaluations = result.evaluations
    assert len(evaluations) > 27 + 9 + 3 + 1 + 12 + 4 + 1 + 6 + 2 + 4
    assert {e.epochs for e in evaluations} <= {4, 12, 36, 108}
    expected = [(4, 27), (12, 9), (36, 3), (108, 1), (12, 12), (36, 4), (108, 1), (36, 6), (108, 2 + 4)]
    stages = _stages(evaluations)
    assert stages[: len(expected)] == expected and stages[len(expected)][0] == 4
    # the 9 promoted to 12 epochs are among the best 9 of the 27 at 4 epochs
    first = evaluations[:27]
    ninth_best = sorted((e.validation_accuracy for e in first), reverse=True)[8]
    best_at_4 = {}
    for e in first:
        best_at_4[e.module_hash] = max(best_at_4.get(e.module_hash, 0.0), e.validation_accuracy)
    for e in evaluations[27:36]:
        if e.valid:
            assert best_at_4[e.module_hash] >= ninth_best


@pytest.fixture(scope="module")
def only108_bench(only108: Path, tmp_path_factory: pytest.TempPathFactory) -> NASBench:
    return NASBench(only108, cache_dir=tmp_path_factory.mktemp("only108_cache"), progress=False)


@pytest.mark.parametrize("algorithm", MULTI_FIDELITY)
def test_multi_fidelity_on_a_108_only_file_fails_before_any_query(
    only108_bench: NASBench, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_query(*args: object) -> None:
        raise AssertionError("queried")

    monkeypatch.setattr(Benchmark, "evaluate", no_query)
    with pytest.raises(DatasetError, match=r"queries 4, 12, 36, 108 epochs; .* no runs at 4, 12, 36 epochs"):
        search(algorithm, only108_bench, Budget(10, "queries"))
    with pytest.raises(DatasetError, match="no runs at 4, 12, 36 epochs"):
        check_budgets(algorithm, only108_bench)
    check_budgets("smac", only108_bench)  # single-fidelity: 108 epochs is all it needs
    with pytest.raises(DatasetError, match="no runs at 12 epochs"):
        check_budgets("random", only108_bench, epochs=12)


@pytest.mark.parametrize("algorithm", MODEL_BASED)
def test_invalid_configurations_are_free_and_never_the_incumbent(small_full: NASBench, algorithm: str) -> None:
    _needs(algorithm)
    options = SearchOptions(**FAST)  # encoding A: many configurations outside the space
    result = search(algorithm, small_full, Budget(6, "queries"), seed=2, options=options)
    invalid = [e for e in result.evaluations if not e.valid]
    assert invalid, "encoding A should give configurations outside the space"
    for e in invalid:
        assert (e.module_hash, e.validation_accuracy, e.training_time) == ("", 0.0, 0.0) and math.isnan(e.test_accuracy)
    valid = [e for e in result.evaluations if e.valid]
    assert result.best_hash == max(valid, key=lambda e: e.validation_accuracy).module_hash
    assert result.times[-1] == pytest.approx(sum(e.training_time for e in valid))


def test_tpe_and_smac_are_told_error_one_for_an_invalid_configuration() -> None:
    pytest.importorskip("optuna")
    from nbcompile.search.cell_encodings import ENCODING
    from nbcompile.search.model_based import OptunaTPE, validation_error

    invalid = Evaluation("tpe", 0, 0, "", 108, -1, 0.0, math.nan, 0.0, 0.0, False)
    valid = Evaluation("tpe", 0, 1, "h", 108, 0, 0.9, 0.9, 1.0, 1.0, True)
    assert validation_error(invalid) == 1.0 and validation_error(valid) == pytest.approx(0.1)
    tpe = OptunaTPE(ENCODING["A"], seed=0)
    tpe.tell(tpe.ask(), invalid)
    tpe.tell(tpe.ask(), valid)
    assert [t.value for t in tpe.study.trials] == [1.0, pytest.approx(0.1)]


def test_reinforce_refuses_encoding_c(small_full: NASBench) -> None:
    with pytest.raises(ValueError, match="encoding C"):
        search("reinforce", small_full, Budget(3, "queries"), options=SearchOptions(encoding="C"))


@pytest.mark.parametrize("bad", [{"encoding": "D"}, {"smac_retrain_after": 0}, {"smac_challengers": 0}])
def test_search_options_name_what_is_wrong(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        SearchOptions(**bad)


def test_hyperbands_budgets_are_the_papers() -> None:
    pytest.importorskip("smac")
    from nbcompile.search.model_based import epochs_of, hyperband_brackets

    assert hyperband_brackets() == [
        [(27, 4.0), (9, 12.0), (3, 36.0), (1, 108.0)],
        [(12, 12.0), (4, 36.0), (1, 108.0)],
        [(6, 36.0), (2, 108.0)],
        [(4, 108.0)],
    ]
    assert epochs_of(36.0) == 36
    for wrong in (4.5, 5.0, 3.0):
        with pytest.raises(RuntimeError, match="budget of"):
            epochs_of(wrong)


#: A SMAC trial of 24 proposals, told seeded scores (no dataset); prints the proposals as JSON.
SMAC_PROPOSALS = """
import json
import numpy as np
from nbcompile.search import model_based
from nbcompile.search.optimizer import SearchContext, SearchOptions
from nbcompile.search.protocol import Evaluation

def proposals(challengers):
    scores = np.random.default_rng(0).random(64)
    options = SearchOptions(encoding="B", smac_retrain_after=2, smac_challengers=challengers)
    optimizer = model_based.smac(SearchContext(5, options, lambda s, e: True, (108,)))
    seen = []
    for i in range(24):
        proposal = optimizer.ask()
        seen.append(dict(proposal.ticket.config))
        ok = proposal.spec is not None
        optimizer.tell(proposal, Evaluation("smac", 0, i, "h", 108, 0, scores[i] if ok else 0.0, 0.9, 1.0, 1.0, ok))
    return seen

if __name__ == "__main__":
    print(json.dumps(proposals(100), sort_keys=True, default=lambda value: value.item()))
"""


def _smac_proposals_module(tmp_path: Path) -> Any:
    path = tmp_path / "smac_proposals.py"
    path.write_text(SMAC_PROPOSALS)
    spec = importlib.util.spec_from_file_location("smac_proposals", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_seeded_smac_trial_does_not_depend_on_pythons_hash_seed(tmp_path: Path) -> None:
    """SMAC3 starts its local search from a set of configurations, hashed as strings: without a
    fixed order, the same seed gave other proposals in another process."""
    pytest.importorskip("smac")
    script = tmp_path / "smac_proposals.py"
    script.write_text(SMAC_PROPOSALS)
    runs = [
        subprocess.Popen(
            [sys.executable, str(script)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed), "OMP_NUM_THREADS": "1"},
            text=True,
        )
        for hash_seed in (1, 2, 3)
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert len(json.loads(outputs[0])) == 24 and outputs[1] == outputs[0] and outputs[2] == outputs[0]


def test_the_forests_loop_predicts_what_smac3s_joblib_dispatch_predicts() -> None:
    """The random forest's trees predict in a plain loop: the same numbers, tree by tree, as
    SMAC3's own dispatch through joblib, on the same fitted forest."""
    pytest.importorskip("smac")
    from smac.model.random_forest.random_forest import EPMRandomForest

    from nbcompile.search.cell_encodings import encoding
    from nbcompile.search.model_based import _random_forest

    space = encoding("A").configuration_space()
    space.seed(3)
    configs = space.sample_configuration(60)
    X = np.array([config.get_array() for config in configs])
    y = np.random.default_rng(3).uniform(0.01, 1.0, size=(len(X), 1))
    model = _random_forest(space, seed=3, trees=5)
    model.train(X[:40], y[:40])
    ours = model._rf.all_trees_pred(X[40:])
    assert type(model._rf) is not EPMRandomForest and ours.shape == (20, 5)
    assert np.array_equal(ours, EPMRandomForest.all_trees_pred(model._rf, X[40:]))
    assert np.unique(ours).size > 5  # the trees differ and the points fall in different leaves


@pytest.mark.parametrize("objectives", [1, 2])
def test_folded_objective_bounds_are_smac3s_after_every_addition(objectives: int) -> None:
    """The run history that folds each finished trial into its objective bounds holds SMAC3's
    bounds after every addition: running trials, then finished, crashed and replaced ones
    (``force_update``), over several budgets, with SMAC3's own run history fed the same."""
    pytest.importorskip("smac")
    from smac.runhistory import RunHistory
    from smac.runhistory.enumerations import StatusType

    from nbcompile.search.cell_encodings import encoding
    from nbcompile.search.model_based import _fold_objective_bounds

    space = encoding("A").configuration_space()
    space.seed(5)
    configs = space.sample_configuration(40)
    rng = np.random.default_rng(5)
    plain, folded = RunHistory(n_objectives=objectives), RunHistory(n_objectives=objectives)
    _fold_objective_bounds(folded)
    assert type(folded) is not RunHistory
    statuses = [StatusType.SUCCESS] * 6 + [StatusType.CRASHED, StatusType.TIMEOUT]
    replaced = 0
    for step in range(300):
        config = configs[int(rng.integers(len(configs)))]
        budget = float(rng.choice([4.0, 12.0, 36.0, 108.0]))
        cost = [float(value) for value in rng.uniform(-1.0, 3.0, size=objectives)]
        status = StatusType.RUNNING if step % 3 == 0 else statuses[int(rng.integers(len(statuses)))]
        force = bool(rng.random() < 0.3)
        key = (plain.config_ids.get(config), budget)
        previous = next((value for k, value in plain.items() if (k.config_id, k.budget) == key), None)
        replaced += force and previous is not None and previous.status == StatusType.SUCCESS
        for history in (plain, folded):
            history.add(config, cost if objectives > 1 else cost[0], status=status, budget=budget, force_update=force)
        assert folded.objective_bounds == plain.objective_bounds, step
    assert replaced > 10 and len(plain.objective_bounds) == objectives
    assert all(low < high for low, high in plain.objective_bounds)


def test_fold_objective_bounds_refuses_another_run_history() -> None:
    pytest.importorskip("smac")
    from smac.runhistory import RunHistory

    from nbcompile.search.model_based import _fold_objective_bounds

    class Other(RunHistory):
        pass

    with pytest.raises(TypeError, match="expected SMAC3's RunHistory, got Other"):
        _fold_objective_bounds(Other())


@pytest.mark.slow
def test_smac_with_smac3s_own_selector_and_intensifier_proposes_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batched incumbent prediction, the set of processed configurations and the rejection
    test by id change nothing: SMAC3's own configuration selector and intensifier propose the
    same configurations (with SMAC3's default 10,000 challengers too)."""
    pytest.importorskip("smac")
    from smac.intensifier.intensifier import Intensifier
    from smac.main.config_selector import ConfigSelector

    from nbcompile.search import model_based

    module = _smac_proposals_module(tmp_path)
    ours = [module.proposals(challengers) for challengers in (100, 10_000)]
    monkeypatch.setattr(
        model_based,
        "_config_selector",
        lambda scenario, retrain_after: ConfigSelector(scenario, retrain_after=retrain_after, max_new_config_tries=16),
    )
    monkeypatch.setattr(model_based, "_intensifier", lambda scenario: Intensifier(scenario, max_config_calls=1))
    assert [module.proposals(challengers) for challengers in (100, 10_000)] == ours


# --- regularized evolution's paper setting --------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(valid_specs(num_vertices=7), st.integers(0, 2**32 - 1))
def test_mutate_one_changes_exactly_one_edge_or_op(spec: ModelSpec, seed: int) -> None:
    """On 7-vertex matrices, as evolution's cells all are (random_spec draws 7×7)."""
    child = mutate_one(spec, np.random.default_rng(seed))
    assert child.is_valid()
    before, after = np.array(spec.original_matrix_tuple), np.array(child.original_matrix_tuple)
    edge_changes = int((before != after).sum())
    op_changes = [(a, b) for a, b in zip(spec.original_ops_tuple, child.original_ops_tuple) if a != b]
    assert edge_changes + len(op_changes) == 1
    assert not np.tril(after).any()  # still upper triangular


def test_evolution_in_the_papers_setting_runs(small_full: NASBench) -> None:
    options = SearchOptions(**EVOLUTION_SETTINGS["paper"])
    result = search("evolution", small_full, Budget(120, "queries"), seed=0, options=options)
    assert result.queries == 120 and all(e.valid for e in result.evaluations)
