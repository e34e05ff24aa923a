"""Rank correlations (Spearman's ρ with average ranks, Kendall's τ-b) against hand-worked cases and
scipy.stats, and ``nbcompile proxies --dataset``'s report recomputed from an independent read of
the dataset file."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from cli_runner import invoke
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_reader import METRICS, read

from nbcompile.proxies.correlation import (
    PUBLISHED,
    average_ranks,
    count_inversions,
    kendall_tau_b,
    spearman,
)
from nbcompile.proxies.table import read_table

TINY_FLAGS = ["--stem-channels", "8", "--num-stacks", "1", "--cells-per-stack", "1"]


def test_average_ranks_share_the_ranks_of_ties() -> None:
    assert average_ranks([10, 20, 20, 30]).tolist() == [1, 2.5, 2.5, 4]
    assert average_ranks([3, 1, 2]).tolist() == [3, 1, 2]
    assert average_ranks([7, 7, 7]).tolist() == [2, 2, 2]
    assert average_ranks([]).tolist() == []


def test_inversions_by_hand() -> None:
    assert count_inversions([3, 1, 2]) == 2
    assert count_inversions([1, 1, 1]) == 0 and count_inversions([]) == 0 and count_inversions([5]) == 0
    assert count_inversions([5, 4, 3, 2, 1]) == 10


@given(st.lists(st.integers(0, 5), max_size=40))
def test_inversions_are_the_pairs_out_of_order(values: list[int]) -> None:
    pairs = sum(a > b for a, b in itertools.combinations(values, 2))
    assert count_inversions(values) == pairs


def test_hand_worked_correlations() -> None:
    # no ties: d = rank differences (−2, 1, 1, −1, 1), Σd² = 8, ρ = 1 − 6·8/(5·24) = 0.6;
    # of the 10 pairs 7 are concordant and 3 discordant, τ = 4/10
    x, y = [1, 2, 3, 4, 5], [3, 1, 2, 5, 4]
    assert spearman(x, y) == pytest.approx(0.6, abs=1e-15)
    assert kendall_tau_b(x, y) == pytest.approx(0.4, abs=1e-15)
    # a tie in x: ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4), deviations (−1.5, 0, 0, 1.5) and
    # (−1.5, .5, −.5, 1.5): ρ = 4.5/√(4.5·5) = 3/√10; 5 concordant pairs, none discordant, one tied
    # in x: τ-b = 5/√((6 − 1)·6) = 5/√30
    x, y = [1, 2, 2, 3], [1, 3, 2, 4]
    assert spearman(x, y) == pytest.approx(3 / math.sqrt(10), abs=1e-15)
    assert kendall_tau_b(x, y) == pytest.approx(5 / math.sqrt(30), abs=1e-15)
    # ties in both and a pair tied in both: (1,1), (1,1), (2,2), (2,1): n0 = 6; tied in x: 2
    # (the pair tied in both, and (2,2)-(2,1)); tied in y: 3; tied in both: 1;
    # concordant: (1,1)-(2,2) twice; discordant: none → τ-b = 2/√((6−2)(6−3)) = 2/√12
    assert kendall_tau_b([1, 1, 2, 2], [1, 1, 2, 1]) == pytest.approx(2 / math.sqrt(12), abs=1e-15)
    assert spearman([1, 2, 3], [30, 20, 10]) == -1.0 and kendall_tau_b([1, 2, 3], [30, 20, 10]) == -1.0
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5])) and math.isnan(kendall_tau_b([1, 2, 3], [5, 5, 5]))
    assert math.isnan(spearman([1], [2])) and math.isnan(kendall_tau_b([], []))


values = st.one_of(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=2, max_size=60),
    st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), min_size=2, max_size=60),
)


@pytest.mark.filterwarnings("ignore:An input array is constant")
@settings(max_examples=150, deadline=None)
@given(values)
def test_against_scipy(pairs: list[tuple[float, float]]) -> None:
    stats = pytest.importorskip("scipy.stats")
    x, y = np.array(pairs, dtype=np.float64).T
    for ours, theirs in ((spearman(x, y), stats.spearmanr(x, y)), (kendall_tau_b(x, y), stats.kendalltau(x, y))):
        expected = float(theirs.statistic)
        assert (math.isnan(ours) and math.isnan(expected)) or ours == pytest.approx(expected, abs=1e-12)


@given(st.lists(st.integers(-50, 50), min_size=2, max_size=40), st.randoms(use_true_random=False))
def test_invariants(x: list[int], random) -> None:
    y = [random.randint(0, 3) for _ in x]
    assert kendall_tau_b(x, y) == pytest.approx(kendall_tau_b(y, x), nan_ok=True)
    cubed = [v**3 + 7 for v in x]  # a strictly increasing transform changes no rank
    assert spearman(cubed, y) == pytest.approx(spearman(x, y), nan_ok=True)
    assert kendall_tau_b(cubed, y) == pytest.approx(kendall_tau_b(x, y), nan_ok=True)


def test_the_published_figures_name_their_source() -> None:
    assert {name: figure.value for name, figure in PUBLISHED.items()} == {
        "grad_norm": 0.198,
        "snip": 0.164,
        "grasp": 0.448,
        "fisher": 0.257,
        "synflow": 0.372,
        "jacob_cov": 0.378,
        "nwot": 0.285,
    }
    assert PUBLISHED["nwot"].statistic == "Kendall tau" and "Mellor" in PUBLISHED["nwot"].source
    assert all("Abdelfattah" in f.source for name, f in PUBLISHED.items() if name != "nwot")


def test_the_command_correlates_with_the_datasets_mean_accuracies(
    small_only108: Path, cells: tuple, tmp_path: Path
) -> None:
    out = tmp_path / "scores.parquet"
    hashes = [cell.module_hash for cell in cells[:6]]
    args = ["proxies", *hashes, "--dataset", str(small_only108), "--cache-dir", str(tmp_path / "cache")]
    args += ["--proxies", "params,nwot", "--batch-size", "4", "--workers", "1", "--out", str(out)]
    result = invoke([*args, *TINY_FLAGS])
    assert result.exit_code == 0, result.stderr
    columns, _ = read_table(out)
    stored = read(small_only108.read_bytes())  # the independent reader
    final_valid, final_test = METRICS.index("final_validation_accuracy"), METRICS.index("final_test_accuracy")
    valid = [np.mean([run[final_valid] for run in stored[h].runs[108]]) for h in columns["module_hash"]]
    test = [np.mean([run[final_test] for run in stored[h].runs[108]]) for h in columns["module_hash"]]
    report = json.loads((tmp_path / "scores.correlations.json").read_text())
    assert [row["proxy"] for row in report["correlations"]] == ["params", "nwot"]
    for row in report["correlations"]:
        x = columns[row["proxy"]]
        assert row["cells"] == 6
        assert row["spearman_validation"] == pytest.approx(spearman(x, valid), abs=1e-12)
        assert row["kendall_test"] == pytest.approx(kendall_tau_b(x, test), abs=1e-12)
    published = {row["proxy"]: row["published"] for row in report["correlations"]}
    assert published["params"] is None and published["nwot"]["value"] == 0.285
    markdown = (tmp_path / "scores.correlations.md").read_text()
    assert "| nwot | 6 |" in markdown and "Kendall tau 0.285" in markdown and "Mellor" in markdown
    assert "| nwot | 6 |" in result.stdout
    assert sorted(p.name for p in (tmp_path / "scores.plots").iterdir()) == ["nwot.png", "params.png"]


def test_a_dataset_without_the_cells_is_refused_before_any_work(
    small_only108: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli_runner import assert_one_line_error
    from example_cells import EXAMPLES

    out = tmp_path / "t.parquet"
    cell = str(EXAMPLES / "seven_vertex_nine_edge.json")
    args = ["proxies", cell, "--dataset", str(small_only108), "--cache-dir", str(tmp_path / "c"), "--out", str(out)]
    assert_one_line_error(invoke([*args, "--workers", "1"]), "--dataset", "holds 0 of the 1 cells")
    assert not out.exists() and not Path(f"{out}.work").exists()

    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real_find_spec(name, *a)
    )
    args[args.index("--cache-dir") + 1] = str(tmp_path / "other")
    assert_one_line_error(invoke([*args, "--workers", "1"]), "matplotlib", "nbcompile[plot]", "--no-plot")
    assert not out.exists() and not (tmp_path / "other").exists()  # refused before the dataset was opened
