"""What a search reports: the summary table, and the plots in the layout of upstream's notebook."""

from __future__ import annotations

import pytest


def test_search_summary_says_queries_are_a_mean_per_run() -> None:
    from nbcompile.search.experiment import format_summary

    row = {
        "algorithm": "random",
        "runs": 3,
        "mean_queries": 12.333,
        "final_test_mean": 0.9,
        "final_test_q25": 0.89,
        "final_test_q75": 0.91,
        "final_validation_mean": 0.92,
    }
    lines = format_summary([row]).splitlines()
    assert lines[0].split()[:3] == ["algorithm", "runs", "queries/run"]
    assert lines[1].split()[:3] == ["random", "3", "12"]
    assert "queries/run: mean number of queries per run" in lines


def _run_result(algorithm: str, times, valids, tests):
    from nbcompile.search.algorithms import SearchResult

    return SearchResult(algorithm, 0, times=[0.0, *times], best_valids=[0.0, *valids], best_tests=[0.0, *tests])


def test_plot_y_range_spans_the_data_not_the_starting_zero() -> None:
    from nbcompile.search.plots import y_range

    # one run: 0.5 from t=10 to 12 (1% of the axis), then 0.9/0.88 until the end at 200; the
    # padding is at least 0.002
    run = _run_result("random", [10.0, 12.0], [0.5, 0.9], [0.5, 0.88])
    assert y_range([run], 200.0) == pytest.approx((0.878, 0.902))
    many_lows = _run_result("random", [10.0, 100.0], [0.5, 0.9], [0.5, 0.88])  # 0.5 held for half the time
    assert y_range([many_lows], 200.0) == pytest.approx((0.5 - 0.05 * 0.4, 0.9 + 0.05 * 0.4))
    assert y_range([_run_result("random", [], [], [])], 10.0) == (0.0, 1.0)  # no query at all


def test_trajectories_in_the_notebooks_layout() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_rgb

    from nbcompile.search.plots import mean_iqr_figure, trajectories_figure, y_range

    runs = [
        _run_result("random", [100.0, 300.0], [0.90, 0.93], [0.89, 0.925]),
        _run_result("random", [50.0, 400.0], [0.91, 0.94], [0.905, 0.93]),
        _run_result("evolution", [80.0, 200.0], [0.92, 0.95], [0.915, 0.94]),
    ]
    figure = trajectories_figure(runs, 500.0, synthetic=True)
    random_axis, evolution_axis = figure.axes
    assert [to_rgb(line.get_color()) for line in random_axis.lines] == [to_rgb("red"), to_rgb("blue")] * 2
    assert [line.get_label() for line in evolution_axis.lines] == ["validation", "test"]
    assert list(random_axis.lines[2].get_ydata()) == [0.0, 0.91, 0.94]  # the second run, validation
    assert random_axis.get_xscale() == "linear" and random_axis.get_xlim() == (0.0, 500.0)
    assert evolution_axis.get_ylim() == pytest.approx(y_range(runs, 500.0))
    assert "SYNTHETIC" in random_axis.get_title() and "red=validation, blue=test" in random_axis.get_title()
    mean = mean_iqr_figure(runs, 500.0, synthetic=False).axes[0]
    assert [to_rgb(line.get_color()) for line in mean.lines] == [to_rgb("red"), to_rgb("blue")]
    assert mean.lines[0].get_ydata()[-1] == pytest.approx((0.925 + 0.93) / 2) and "SYNTHETIC" not in mean.get_title()


def test_study_figures_are_the_papers_log_log_regret_and_ecdf() -> None:
    pytest.importorskip("matplotlib")
    import numpy as np

    from nbcompile.search.analysis import TrialRegret
    from nbcompile.search.plots import regret_ecdf_figure, regret_figure, regret_floor

    def trial(algorithm: str, number: int, times, regrets) -> TrialRegret:
        regrets = np.array(regrets, dtype=float)
        return TrialRegret(algorithm, number, np.array(times, dtype=float), regrets, regrets)

    curves = [
        trial("random", 0, [10, 100, 1000], [0.05, 0.02, 0.01]),
        trial("random", 1, [20, 200, 900], [0.04, 0.04, 0.0]),  # found the best cell: regret 0
        trial("evolution", 0, [10, 50, 1000], [0.03, 0.01, 0.005]),
    ]
    assert regret_floor(curves) == 1e-4  # a decade below the smallest positive regret, 0.005
    axis = regret_figure(curves, synthetic=True, axis_kind="time").axes[0]
    assert axis.get_xscale() == "log" and axis.get_yscale() == "log"
    assert [line.get_label() for line in axis.lines] == ["random (2 trials)", "evolution (1 trials)"]
    random_line = axis.lines[0]
    assert random_line.get_xdata()[0] == 20.0  # defined once both trials have an incumbent
    assert random_line.get_ydata()[-1] == pytest.approx(0.005)  # (0.01 + 0) / 2
    assert len(axis.collections) == 2 and "standard error" in axis.get_title() and "SYNTHETIC" in axis.get_title()
    by_query = regret_figure(curves, synthetic=False, axis_kind="queries").axes[0]
    assert list(by_query.lines[1].get_xdata()) == [1.0, 2.0, 3.0] and "SYNTHETIC" not in by_query.get_title()
    ecdf = regret_ecdf_figure(curves, synthetic=False).axes[0]
    random_ecdf = ecdf.lines[0]
    assert list(random_ecdf.get_xdata()) == [1e-4, 1e-4, 0.01]  # the 0 drawn at the floor
    assert list(random_ecdf.get_ydata()) == [0.0, 0.5, 1.0]
