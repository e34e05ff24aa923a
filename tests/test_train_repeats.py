"""Files of one's own training runs hold cells with fewer than upstream's 3 repeats: NASBench's
query draws from the runs a cell has, and the mean is over those runs."""

from __future__ import annotations

import collections
import json

import pytest
from example_cells import EXAMPLES, INCEPTION

from nbcompile.errors import DatasetError
from nbcompile.nasbench import NASBench
from nbcompile.nasbench.tfrecord import frame
from nbcompile.nasbench.writer import encode_record
from nbcompile.space.spec import ModelSpec
from nbcompile.train.results import record_of

CELLS = [ModelSpec(**INCEPTION), ModelSpec(**json.loads((EXAMPLES / "seven_vertex_nine_edge.json").read_text()))]
CELLS.append(ModelSpec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"]))


def run_result(spec: ModelSpec, epochs: int, test_accuracy: float) -> dict:
    """A training result as ``nbcompile train`` writes it, with a known final test accuracy."""
    evaluations = [
        {
            "current_epoch": e,
            "training_time": t,
            "train_accuracy": 0.5,
            "validation_accuracy": 0.25,
            "test_accuracy": test_accuracy,
        }
        for e, t in ((0.0, 0.0), (epochs / 2, 10.0), (float(epochs), 20.0))
    ]
    return {
        "module_hash": spec.module_hash,
        "epochs": epochs,
        "matrix": spec.pruned_matrix,
        "ops": spec.pruned_ops,
        "trainable_parameters": 1234,
        "total_time": 30.0,
        "evaluations": evaluations,
    }


@pytest.fixture(scope="module")
def own_runs(tmp_path_factory):
    """Cell 0 with one run (test 0.5), cell 1 with two (0.25, 0.75), cell 2 with one at 4 epochs only."""
    cells = CELLS
    results = [run_result(cells[0], 108, 0.5), run_result(cells[1], 108, 0.25), run_result(cells[1], 108, 0.75)]
    results.append(run_result(cells[2], 4, 0.125))
    path = tmp_path_factory.mktemp("own") / "own_runs.tfrecord"
    path.write_bytes(b"".join(frame(encode_record(record_of(r))) for r in results))
    return NASBench(path, cache=False, progress=False, seed=0), cells


def test_a_cell_with_fewer_than_three_runs_draws_from_the_runs_it_has(own_runs):
    bench, cells = own_runs
    assert [bench.query(cells[0])["test_accuracy"] for _ in range(20)] == [0.5] * 20
    drawn = collections.Counter(bench.query(cells[1])["test_accuracy"] for _ in range(400))
    assert set(drawn) == {0.25, 0.75} and min(drawn.values()) > 150  # each about half the time
    assert bench.query(cells[1], reduce="mean")["test_accuracy"] == 0.5
    many = bench.query_many([cells[0], cells[1]] * 50)["test_accuracy"]
    assert set(many[::2]) == {0.5} and set(many[1::2]) == {0.25, 0.75}
    assert bench.query(cells[2], epochs=4)["test_accuracy"] == 0.125


def test_a_cell_without_runs_at_a_budget_says_so(own_runs):
    bench, cells = own_runs
    for reduce in (None, "mean"):
        with pytest.raises(DatasetError, match=f"cell {cells[2].module_hash} has no run at 108 epochs"):
            bench.query(cells[2], reduce=reduce)
