"""Studies (nbcompile.search.study, .analysis): every row of evaluations.parquet recomputed from the
file by the independent reader, regret curves and the summary recomputed from the rows by plain
loops, the same bytes for a seed whatever the workers, resuming, failing trials, refused reruns,
and the command's one-line errors; a study on Ray behind the ``ray`` marker."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow
import pyarrow.parquet as parquet
import pytest
import reference_reader
from cli_runner import assert_one_line_error, invoke

from nbcompile import tasks
from nbcompile.nasbench import NASBench
from nbcompile.search import ALGORITHMS, Algorithm, Budget, SearchOptions, search
from nbcompile.search.analysis import mean_over_queries, mean_over_time, trial_regrets, within_budget
from nbcompile.search.experiment import Experiment, local_executor, ray_executor, trials_of
from nbcompile.search.optimizer import Optimizer, Proposal
from nbcompile.search.protocol import best_mean_test_accuracy
from nbcompile.search.study import StudyMismatch, evaluation_columns, evaluations_table, run_study, write_report
from nbcompile.space.enumeration import enumerate_cells, sample_cells
from nbcompile.synthetic.fixture import ONLY_108, write_fixture

BUDGET = Budget(3e4)
ALGORITHM_NAMES = ("random", "evolution", "local")


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory) -> Path:
    """Every cell of up to 5 vertices plus a spread of bigger ones, at 108 epochs: searches mostly hit."""
    path = tmp_path_factory.mktemp("study") / "study_synthetic.tfrecord"
    write_fixture(path, list(enumerate_cells(max_vertices=5, workers=1)) + sample_cells(300), ONLY_108)
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("study_cache")


@pytest.fixture(scope="module")
def opened(dataset_file, cache_dir) -> NASBench:
    return NASBench(dataset_file, cache_dir=cache_dir, progress=False)


def experiment_of(dataset_file: Path, cache_dir: Path, algorithms=ALGORITHM_NAMES, trials: int = 2) -> Experiment:
    return Experiment(
        str(dataset_file), algorithms, trials, BUDGET, 11, SearchOptions(population_size=5), str(cache_dir)
    )


def run(experiment: Experiment, opened: NASBench, out: Path, workers: int = 1) -> tasks.TaskSummary:
    summary = run_study(experiment, out, local_executor(experiment, opened, workers), opened)
    write_report(experiment, out, best_mean_test_accuracy(opened))
    return summary


@pytest.fixture(scope="module")
def study(dataset_file, cache_dir, opened, tmp_path_factory) -> Path:
    """One study of random search, evolution and local search, 2 trials each, in this process."""
    out = tmp_path_factory.mktemp("study_out")
    run(experiment_of(dataset_file, cache_dir), opened, out)
    return out


# --- the rows ----------------------------------------------------------------------------------------
def test_every_row_is_what_the_file_holds(study, dataset_file) -> None:
    table = parquet.read_table(study / "evaluations.parquet")
    assert [(f.name, str(f.type)) for f in table.schema] == [
        ("algorithm", "string"),
        ("trial", "int64"),
        ("index", "int64"),
        ("module_hash", "string"),
        ("epochs", "int64"),
        ("repeat", "int64"),
        ("validation_accuracy", "double"),
        ("test_accuracy", "double"),
        ("training_time", "double"),
        ("cumulative_time", "double"),
        ("valid", "bool"),
    ]
    cells = reference_reader.read(dataset_file.read_bytes())
    rows = table.to_pylist()
    assert [(r["algorithm"], r["trial"]) for r in rows] == sorted(
        ((r["algorithm"], r["trial"]) for r in rows), key=lambda key: (ALGORITHM_NAMES.index(key[0]), key[1])
    )
    by_trial: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        by_trial.setdefault((row["algorithm"], row["trial"]), []).append(row)
    assert set(by_trial) == {(a, t) for a in ALGORITHM_NAMES for t in (0, 1)}
    for trial_rows in by_trial.values():
        spent = 0.0
        for index, row in enumerate(trial_rows):
            assert row["index"] == index and row["valid"] and row["epochs"] == 108
            runs = cells[row["module_hash"]].runs[108]  # (halfway: time, train, valid, test; final: the same)
            assert 0 <= row["repeat"] < len(runs)
            assert row["validation_accuracy"] == runs[row["repeat"]][6]
            assert row["training_time"] == runs[row["repeat"]][4]
            assert row["test_accuracy"] == pytest.approx(sum(r[7] for r in runs) / len(runs), abs=1e-15)
            spent += row["training_time"]
            assert row["cumulative_time"] == spent
        # the query that crosses the budget is the last, and counts
        assert trial_rows[-1]["cumulative_time"] > BUDGET.amount >= trial_rows[-2]["cumulative_time"]


# --- curves and summary, recomputed by plain loops -----------------------------------------------------
def loop_regrets(rows: list[dict], reference: float) -> list[float]:
    """After each row: reference - the mean test accuracy of the best valid row by validation so far."""
    best_validation, regrets, regret = -math.inf, [], math.nan
    for row in rows:
        if row["valid"] and row["validation_accuracy"] > best_validation:
            best_validation, regret = row["validation_accuracy"], reference - row["test_accuracy"]
        regrets.append(regret)
    return regrets


def test_regret_curves_and_summary_recomputed_from_the_rows(study, dataset_file) -> None:
    cells = reference_reader.read(dataset_file.read_bytes())
    reference = max(sum(r[7] for r in c.runs[108]) / len(c.runs[108]) for c in cells.values())
    rows = parquet.read_table(study / "evaluations.parquet").to_pylist()
    trials: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        trials.setdefault((row["algorithm"], row["trial"]), []).append(row)
    expected = {key: loop_regrets(trial_rows, reference) for key, trial_rows in trials.items()}
    table = parquet.read_table(study / "evaluations.parquet")
    curves = trial_regrets(evaluation_columns(table), reference)
    assert [(c.algorithm, c.trial) for c in curves] == list(trials)
    for curve in curves:
        np.testing.assert_allclose(curve.regrets, expected[curve.algorithm, curve.trial], rtol=0, atol=1e-12)
    summary = json.loads((study / "summary.json").read_text())
    assert summary["regret_reference"] == pytest.approx(reference, abs=1e-12)
    finals: dict[str, list[float]] = {}
    for (algorithm, _), regrets in expected.items():
        finals.setdefault(algorithm, []).append(regrets[-1])

    def mean_at(algorithm: str, time: float) -> float:
        """Mean over the algorithm's trials of the regret after the last row at or before ``time``."""
        values = []
        for key, trial_rows in trials.items():
            if key[0] == algorithm:
                held = [r for r, row in zip(expected[key], trial_rows) if row["cumulative_time"] <= time]
                values.append(held[-1] if held else math.nan)
        return sum(values) / len(values)

    def first_reaching(algorithm: str, target: float) -> float | None:
        times = sorted({row["cumulative_time"] for (name, _), rs in trials.items() if name == algorithm for row in rs})
        return next((t for t in times if mean_at(algorithm, t) <= target + 1e-12), None)

    random_final = sum(finals["random"]) / len(finals["random"])
    random_time = first_reaching("random", random_final)
    for row in summary["algorithms"]:
        algorithm = row["algorithm"]
        assert row["trials"] == 2 and row["failed"] == 0
        assert row["mean_queries"] == len([r for r in rows if r["algorithm"] == algorithm]) / 2
        assert row["final_regret_mean"] == pytest.approx(sum(finals[algorithm]) / 2, abs=1e-12)
        assert row["final_regret_median"] == pytest.approx(sum(finals[algorithm]) / 2, abs=1e-12)  # of two
        reached = first_reaching(algorithm, random_final)
        assert row["reaches_random_final_at"] == reached
        assert row["speedup_vs_random"] == (pytest.approx(random_time / reached) if reached else None)
    # the mean curve at a few times, and after each number of queries
    for algorithm in ALGORITHM_NAMES:
        curve = mean_over_time([c for c in curves if c.algorithm == algorithm])
        for time in (5e3, 1.2e4, 2.5e4, 1e9):
            index = np.searchsorted(curve.x, time, side="right") - 1
            value = curve.mean[index] if index >= 0 else math.nan
            assert value == pytest.approx(mean_at(algorithm, time), abs=1e-12, nan_ok=True), (algorithm, time)
        by_query = mean_over_queries([c for c in curves if c.algorithm == algorithm])
        fewest = min(len(rs) for (name, _), rs in trials.items() if name == algorithm)
        assert by_query.x.tolist() == list(range(1, fewest + 1))
        assert by_query.mean[-1] == pytest.approx(
            np.mean([expected[key][fewest - 1] for key in trials if key[0] == algorithm]), abs=1e-12
        )


def test_curves_of_a_hand_worked_table() -> None:
    """Two trials; trial 0: an invalid row, then validation 0.5 (test 0.7) at t=10, validation 0.5
    again (test 0.9, a tie: kept out) at t=30; trial 1: validation 0.6 (test 0.8) at t=20."""
    columns = {
        "algorithm": np.array(["a", "a", "a", "a"], dtype=object),
        "trial": np.array([0, 0, 0, 1]),
        "valid": np.array([False, True, True, True]),
        "validation_accuracy": np.array([0.0, 0.5, 0.5, 0.6]),
        "test_accuracy": np.array([np.nan, 0.7, 0.9, 0.8]),
        "cumulative_time": np.array([0.0, 10.0, 30.0, 20.0]),
    }
    first, second = trial_regrets(columns, reference=1.0)
    np.testing.assert_allclose(first.regrets, [np.nan, 0.3, 0.3])
    assert first.queries == 2 and second.final == pytest.approx(0.2)
    curve = mean_over_time([first, second])
    assert curve.x.tolist() == [10.0, 20.0, 30.0]
    np.testing.assert_allclose(curve.mean, [np.nan, 0.25, 0.25])
    assert curve.standard_error[1] == pytest.approx(0.05)  # std 0.0707 (ddof 1) / sqrt(2)
    assert curve.first_reaching(0.25) == 20.0 and curve.first_reaching(0.1) is None
    assert mean_over_queries([first, second]).mean.tolist() == pytest.approx([0.25])


def test_rows_within_a_smaller_budget_of_a_hand_worked_table() -> None:
    """Trial 0: invalid, valid at t=10, invalid, valid at t=30, valid at t=50; trial 1: valid at t=5."""
    columns = {
        "algorithm": np.array(["a"] * 6, dtype=object),
        "trial": np.array([0, 0, 0, 0, 0, 1]),
        "index": np.array([0, 1, 2, 3, 4, 0]),
        "valid": np.array([False, True, False, True, True, True]),
        "cumulative_time": np.array([0.0, 10.0, 10.0, 30.0, 50.0, 5.0]),
    }

    def kept(budget: Budget) -> list[tuple[int, int]]:
        rows = within_budget(columns, budget)
        return list(zip(rows["trial"].tolist(), rows["index"].tolist()))

    assert kept(Budget(10.0)) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]  # t=30 crosses 10 and counts
    assert kept(Budget(9.0)) == [(0, 0), (0, 1), (1, 0)]
    assert kept(Budget(100.0)) == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0)]  # never spent: all
    assert kept(Budget(2, "queries")) == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]  # the 2nd valid query ends it
    assert kept(Budget(1, "queries")) == [(0, 0), (0, 1), (1, 0)]


@pytest.mark.parametrize("budget", [Budget(1e4), Budget(12, "queries")], ids=["time", "queries"])
def test_a_trial_at_a_smaller_budget_is_the_start_of_the_same_trial_at_a_larger_one(opened, budget) -> None:
    """No optimizer sees its budget: the rows within the smaller budget of a longer trial are the
    rows of the trial run with it (so one study answers for every smaller budget)."""
    larger = Budget(budget.amount * 4, budget.kind)
    options = SearchOptions(population_size=5)
    for name in ALGORITHM_NAMES:
        short = evaluation_columns(evaluations_table(search(name, opened, budget, 7, options).evaluations))
        long = evaluation_columns(evaluations_table(search(name, opened, larger, 7, options).evaluations))
        assert len(long["index"]) > len(short["index"]) + 5
        cut = within_budget(long, budget)
        assert cut.keys() == short.keys()
        for column, values in short.items():
            np.testing.assert_array_equal(cut[column], values, err_msg=f"{name}: {column}")


# --- the same study, whatever runs it -----------------------------------------------------------------
def test_seeded_studies_are_identical_whatever_the_workers(study, dataset_file, cache_dir, opened, tmp_path) -> None:
    experiment = experiment_of(dataset_file, cache_dir)
    again = tmp_path / "again"
    run(experiment, opened, again)
    two = tmp_path / "two"
    run(experiment, opened, two, workers=2)
    expected = (study / "evaluations.parquet").read_bytes()
    assert (again / "evaluations.parquet").read_bytes() == expected
    assert (two / "evaluations.parquet").read_bytes() == expected
    other = tmp_path / "other"
    run(dataclasses.replace(experiment, seed=12), opened, other)
    assert (other / "evaluations.parquet").read_bytes() != expected


class Counting:
    """An executor that runs in this process and counts what it was given."""

    def __init__(self, inner: tasks.Executor) -> None:
        self.inner, self.slots, self.submitted = inner, inner.slots, []

    def submit(self, task, attempt: int) -> concurrent.futures.Future:
        self.submitted.append(task.name)
        return self.inner.submit(task, attempt)

    def close(self) -> None:
        self.inner.close()


def test_an_interrupted_study_resumes_with_the_trials_missing(study, dataset_file, cache_dir, opened, tmp_path):
    experiment = experiment_of(dataset_file, cache_dir)
    out = tmp_path / "resumed"
    (out / "trials").mkdir(parents=True)
    shutil.copy(study / "study.json", out / "study.json")
    kept = ["random-00000", "local-00001"]
    for name in kept:
        shutil.copy(study / "trials" / f"{name}.parquet", out / "trials" / f"{name}.parquet")
    (out / "trials" / ".evolution-00000.parquet.abc.tmp").write_bytes(b"half a file")  # a killed write
    executor = Counting(local_executor(experiment, opened, 1))
    summary = run_study(experiment, out, executor, opened)
    write_report(experiment, out, best_mean_test_accuracy(opened))
    assert sorted(executor.submitted) == sorted(t.name for t in trials_of(experiment) if t.name not in kept)
    assert (summary.finished_before, summary.succeeded) == (2, 4)
    assert not list((out / "trials").glob(".*.tmp"))
    assert (out / "evaluations.parquet").read_bytes() == (study / "evaluations.parquet").read_bytes()
    again = Counting(local_executor(experiment, opened, 1))
    assert run_study(experiment, out, again, opened).finished_before == 6 and not again.submitted


def test_a_rerun_with_other_settings_is_refused(study, dataset_file, cache_dir, opened, tmp_path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(study, out)
    experiment = experiment_of(dataset_file, cache_dir)
    for changed, setting in [
        (dataclasses.replace(experiment, budget=Budget(4e4)), "budget.amount"),
        (dataclasses.replace(experiment, repeats=3), "trials"),
        (dataclasses.replace(experiment, options=SearchOptions(population_size=6)), "options.population_size"),
    ]:
        executor = Counting(local_executor(changed, opened, 1))
        with pytest.raises(StudyMismatch, match=setting.replace(".", r"\.")) as refused:
            run_study(changed, out, executor, opened)
        assert refused.value.setting == setting and not executor.submitted


# --- failures -----------------------------------------------------------------------------------------
class Broken(Optimizer):
    def __init__(self, failures: list[int]) -> None:
        self.failures = failures

    def ask(self) -> Proposal:
        self.failures.append(1)
        raise RuntimeError("the optimizer broke")

    def tell(self, proposal, evaluation) -> None:
        pass


def test_a_failing_trial_is_retried_then_recorded_while_the_others_finish(
    dataset_file, cache_dir, opened, tmp_path, monkeypatch
) -> None:
    failures: list[int] = []
    flaky_calls: list[int] = []

    def flaky(context):
        flaky_calls.append(1)
        if len(flaky_calls) == 1:  # the first attempt of the first trial fails, its retry works
            raise OSError("a passing hiccup")
        return ALGORITHMS["random"].build(context)

    monkeypatch.setitem(ALGORITHMS, "broken", Algorithm("broken", lambda context: Broken(failures), "always fails"))
    monkeypatch.setitem(ALGORITHMS, "flaky", Algorithm("flaky", flaky, "fails once"))
    experiment = experiment_of(dataset_file, cache_dir, ("random", "broken", "flaky"), trials=2)
    out = tmp_path / "failing"
    summary = run(experiment, opened, out)
    assert (summary.succeeded, summary.failed, summary.retries) == (4, 2, 5)
    assert len(failures) == 6  # 3 attempts × 2 trials
    report = json.loads((out / "summary.json").read_text())
    assert [(r["algorithm"], r["trials"], r["failed"]) for r in report["algorithms"]] == [
        ("random", 2, 0),
        ("broken", 0, 2),
        ("flaky", 2, 0),
    ]
    assert report["failed_trials"]["broken-00000"] == [
        f"attempt {n}: RuntimeError: the optimizer broke" for n in (1, 2, 3)
    ]
    flaky_file = parquet.read_table(out / "trials" / "flaky-00000.parquet")
    assert json.loads(flaky_file.schema.metadata[b"nbcompile"])["errors"] == ["attempt 1: OSError: a passing hiccup"]
    algorithms = set(parquet.read_table(out / "evaluations.parquet").column("algorithm").to_pylist())
    assert algorithms == {"random", "flaky"}
    assert pyarrow.parquet.read_table(out / "trials" / "broken-00001.parquet").num_rows == 0


# --- the command ----------------------------------------------------------------------------------------
def search_args(dataset: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "search",
        "--dataset",
        str(dataset),
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(tmp_path / "o"),
        *extra,
    ]


def test_cli_refuses_missing_extras_before_opening_the_dataset(small_only108, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(
        ALGORITHMS,
        "needy",
        Algorithm("needy", ALGORITHMS["random"].build, "needs a module", ("no_such_module_xyz",), "search"),
    )
    missing = 'needs no_such_module_xyz, which is not installed: pip install "nbcompile[search]"'
    assert_one_line_error(
        invoke(search_args(small_only108, tmp_path, "--algo", "random,needy")), "--algo needy", missing
    )
    assert_one_line_error(invoke(search_args(small_only108, tmp_path, "--algo", "random,bogus")), "unknown algorithm")
    import importlib.util

    real = importlib.util.find_spec
    for module, flag, extra in (("ray", ["--ray"], "ray"), ("pyarrow", [], "search")):
        monkeypatch.setattr(
            importlib.util, "find_spec", lambda name, *a, module=module: None if name == module else real(name, *a)
        )
        assert_one_line_error(invoke(search_args(small_only108, tmp_path, *flag)), f'pip install "nbcompile[{extra}]"')
        monkeypatch.setattr(importlib.util, "find_spec", real)
    assert not (tmp_path / "c").exists() and not (tmp_path / "o").exists()


def test_cli_refuses_a_multi_fidelity_algorithm_on_a_file_without_its_budgets(small_only108, tmp_path, monkeypatch):
    monkeypatch.setitem(
        ALGORITHMS, "fidelity", Algorithm("fidelity", ALGORITHMS["random"].build, "multi-fidelity", multi_fidelity=True)
    )
    line = assert_one_line_error(invoke(search_args(small_only108, tmp_path, "--algo", "random,fidelity")))
    assert "--algo fidelity" in line and "no runs at 4, 12, 36 epochs" in line
    assert not (tmp_path / "o").exists()


def test_cli_resumes_and_refuses_other_settings(small_only108, tmp_path) -> None:
    args = search_args(
        small_only108,
        tmp_path,
        "--algo",
        "random",
        "--repeats",
        "2",
        "--budget",
        "5",
        "--budget-kind",
        "queries",
        "--workers",
        "1",
    )
    first = invoke(args)
    assert first.exit_code == 0, first.output
    assert "2 trials run, 0 already done" in first.stderr
    again = invoke(args)
    assert again.exit_code == 0 and "0 trials run, 2 already done" in again.stderr
    before = (tmp_path / "o" / "evaluations.parquet").read_bytes()
    changed = [*args, "--budget", "6"]
    assert_one_line_error(invoke(changed), "holds a study with --budget 5, not 6", "study.json")
    assert_one_line_error(invoke([*args, "--evolution-settings", "paper"]), "--population-size 50, not 100")
    assert (tmp_path / "o" / "evaluations.parquet").read_bytes() == before


# --- Ray ----------------------------------------------------------------------------------------------
@pytest.mark.ray
def test_a_study_on_ray_equals_the_local_one(ray_local, study, dataset_file, cache_dir, opened, tmp_path) -> None:
    experiment = experiment_of(dataset_file, cache_dir)
    out = tmp_path / "ray"
    summary = run_study(experiment, out, ray_executor(experiment, opened), opened)
    write_report(experiment, out, best_mean_test_accuracy(opened))
    assert (summary.succeeded, summary.failed) == (6, 0)
    assert (out / "evaluations.parquet").read_bytes() == (study / "evaluations.parquet").read_bytes()
