"""The layout matrix: files in every byte layout upstream's reader accepts, written by hand
(tests/nasbench_bytes.py), load with exactly the values written, through the built-in reader and
(with the ``tf`` extra) the TensorFlow one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dataset_files import assert_tables_equal
from hypothesis import given, settings
from hypothesis import strategies as st
from nasbench_bytes import CELLS, I32, I64, LAYOUTS, LEN, VARINT, Layout, Run, known_runs, payload, pb, write_file

from nbcompile.errors import DatasetError
from nbcompile.nasbench import NASBench
from nbcompile.nasbench.convert import convert_file
from nbcompile.nasbench.metrics import parse_model_metrics
from nbcompile.space.ops import OP_CODE


def _assert_holds(tables, runs: list[Run]) -> None:
    """The tables hold exactly the runs (cells in first-seen order, repeats in file order)."""
    hashes = list(dict.fromkeys(run.module_hash for run in runs))
    assert [h.decode() for h in tables.hashes] == hashes
    epochs = sorted({run.epochs for run in runs})
    assert tables.epochs.tolist() == epochs
    seen: dict[tuple[str, int], int] = {}
    for run in runs:
        row, column = hashes.index(run.module_hash), epochs.index(run.epochs)
        repeat = seen[run.module_hash, run.epochs] = seen.get((run.module_hash, run.epochs), -1) + 1
        halfway, final = run.evaluations[1], run.evaluations[2]
        assert tables.metrics[row, column, repeat].tolist() == [*halfway[1:], *final[1:]]
        size = len(run.ops)
        assert tables.num_vertices[row] == size and tables.parameters[row] == run.parameters
        assert tables.ops[row, :size].tolist() == [OP_CODE[op] for op in run.ops]
        assert "".join(map(str, tables.matrices[row, :size, :size].ravel().tolist())) == run.adjacency
    assert tables.repeats.tolist() == [[seen[h, e] + 1 for e in epochs] for h in hashes]


def _tf_agrees(path: Path, tables) -> None:
    try:
        import tensorflow  # noqa: F401

        from nbcompile.nasbench.tf_reader import convert_file_tf
    except ImportError:
        return
    assert_tables_equal(convert_file_tf(path), tables)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_every_layout_loads_with_the_values_written(tmp_path, name: str) -> None:
    runs = known_runs(epochs=(4, 108))
    path = write_file(tmp_path / "layout.tfrecord", [payload(run, LAYOUTS[name]) for run in runs])
    tables = convert_file(path, workers=1)
    _assert_holds(tables, runs)
    _tf_agrees(path, tables)


def test_a_file_mixing_layouts_record_by_record(tmp_path, monkeypatch) -> None:
    from nbcompile.nasbench import convert

    runs = known_runs(epochs=(4, 12, 36, 108))
    layouts = list(LAYOUTS.values())
    path = write_file(
        tmp_path / "mixed.tfrecord", [payload(run, layouts[i % len(layouts)]) for i, run in enumerate(runs)]
    )
    tables = convert_file(path, workers=1)
    _assert_holds(tables, runs)
    monkeypatch.setattr(convert, "CHUNK_RECORDS", 5)  # several processes, chunks cut inside cells
    assert_tables_equal(convert_file(path, workers=2), tables)
    _tf_agrees(path, tables)


def test_a_third_party_file_loads_and_answers_queries(tmp_path) -> None:
    """A derived benchmark's file: line-broken base64, ModelMetrics fields 6-14 of mixed wire types,
    EvaluationData field 6 as a double. Today's upstream reads it; so must nbcompile."""
    runs = known_runs()
    path = write_file(tmp_path / "derived.tfrecord", [payload(run, LAYOUTS["third party"]) for run in runs])
    bench = NASBench(path, cache_dir=tmp_path / "cache", workers=1)
    fixed, computed = bench.get_metrics_from_hash(CELLS[2][0])
    assert fixed["trainable_parameters"] == 2_694_282
    assert [run["final_validation_accuracy"] for run in computed[108]] == [r.evaluations[2][3] for r in runs[6:9]]
    _assert_holds(bench.tables, runs)


# --- the protobuf message on its own -----------------------------------------------------------------
_values = st.tuples(*[st.floats(allow_nan=False, width=64)] * 5)


def _unknown(first: int):
    """Fields numbered ``first`` to 99 (unknown to the message), of every wire type."""
    numbers = st.integers(first, 99)
    return st.lists(
        st.one_of(
            st.builds(lambda n, v: pb(n, VARINT, v), numbers, st.integers(0, 2**64 - 1)),
            st.builds(lambda n, v: pb(n, I64, v), numbers, st.floats(allow_nan=False)),
            st.builds(lambda n, v: pb(n, LEN, v), numbers, st.binary(max_size=20)),
            st.builds(lambda n, v: pb(n, I32, v), numbers, st.integers(-(2**31), 2**31 - 1)),
        ),
        max_size=4,
    )


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    st.lists(_values, min_size=3, max_size=4),
    st.integers(-(2**31), 2**31 - 1),
    st.floats(allow_nan=False),
    st.randoms(use_true_random=False),
    _unknown(4),
    _unknown(7),
)
def test_fields_in_any_order_with_unknown_fields(evaluations, parameters, total, rng, top_extra, inner_extra) -> None:
    inner = []
    for values in evaluations:
        fields = [pb(n, I64, v) for n, v in enumerate(values, 1)] + inner_extra
        rng.shuffle(fields)
        inner.append(pb(1, LEN, b"".join(fields)))
    scalars = [pb(2, VARINT, parameters), pb(3, I64, total), *top_extra]
    rng.shuffle(scalars)
    cut = rng.randint(0, len(scalars))
    decoded = parse_model_metrics(b"".join(scalars[:cut] + inner + scalars[cut:]))  # evaluations keep their order
    assert decoded.trainable_parameters == parameters
    assert decoded.total_time == total or (decoded.total_time != decoded.total_time and total != total)
    got = [
        (e.current_epoch, e.training_time, e.train_accuracy, e.validation_accuracy, e.test_accuracy)
        for e in decoded.evaluation_data
    ]
    assert got == [tuple(values) for values in evaluations]


def test_repeated_scalars_last_one_wins_and_wrong_wire_types_are_skipped() -> None:
    evaluation = pb(2, I64, 1.0) + pb(2, I64, 2.0) + pb(6, I64, 3.0) + pb(1, VARINT, 4)
    raw = pb(1, LEN, evaluation) + pb(2, VARINT, 5) + pb(2, VARINT, 6) + pb(3, VARINT, 7) + pb(1, I32, 8)
    decoded = parse_model_metrics(raw)
    assert decoded.trainable_parameters == 6 and decoded.total_time == 0.0
    assert len(decoded.evaluation_data) == 1
    only = decoded.evaluation_data[0]
    assert only.training_time == 2.0 and only.current_epoch == 0.0 and only.checkpoint_path == ""
    assert parse_model_metrics(pb(2, VARINT, -5)).trainable_parameters == -5  # int32, ten-byte varint


# --- what must still be refused ------------------------------------------------------------------------
def _one_bad(tmp_path: Path, bad: bytes, workers: int = 1, monkeypatch=None) -> str:
    good = [payload(run, LAYOUTS["empty path"]) for run in known_runs()]
    payloads = [*good[:4], bad, *good[4:]]
    path = write_file(tmp_path / "bad.tfrecord", payloads)
    offset = sum(len(p) + 16 for p in payloads[:4])
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError) as caught:
        NASBench(path, cache_dir=cache, workers=workers)
    message = str(caught.value)
    assert message.startswith(f"record 4 at byte {offset}: ") and "\n" not in message, message
    assert not cache.exists() or not any(cache.iterdir())
    return message


def _edit_metrics(run: Run, edit) -> bytes:
    fields = json.loads(payload(run, Layout()))
    fields[4] = edit(fields[4])
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda run: _edit_metrics(run, lambda text: "*" + text), "metrics is not valid base64"),
        (lambda run: _edit_metrics(run, lambda text: text[:8] + "\u00e9" + text[8:]), "metrics is not valid base64"),
        (
            lambda run: payload(
                Run(
                    *[getattr(run, f) for f in ("module_hash", "epochs", "adjacency", "ops", "parameters")],
                    run.evaluations[:2],
                ),
                Layout(),
            ),
            "metrics has 2 evaluations, expected 3",
        ),
        (
            lambda run: payload(run, Layout()).replace(b", 108,", b", 9223372036854775808,"),
            "epochs 9223372036854775808 is not",
        ),
        (
            lambda run: payload(run, Layout()).replace(b", 108,", b", " + b"9" * 5000 + b","),
            "payload is not JSON (Exceeds the limit",
        ),
        (lambda run: b"[" * 200_000 + b"]" * 200_000, "payload is not JSON (nested too deeply)"),
        (lambda run: payload(run, Layout()).replace(b'", "input', b'", "input\\u0000'), "unknown op"),
    ],
)
def test_bad_records_give_one_line_naming_record_and_offset(tmp_path, make, expected: str) -> None:
    bad = make(known_runs()[4])
    assert expected in _one_bad(tmp_path, bad)


def test_errors_in_worker_processes_are_the_same_line(tmp_path, monkeypatch) -> None:
    from nbcompile.nasbench import convert

    monkeypatch.setattr(convert, "CHUNK_RECORDS", 2)  # record 4 is in the third chunk, in a worker
    bad = payload(known_runs()[4], Layout()).replace(b", 108,", b", " + b"7" * 5000 + b",")
    assert "payload is not JSON" in _one_bad(tmp_path, bad, workers=2)
    nested = b"[" * 200_000 + b"]" * 200_000
    assert "nested too deeply" in _one_bad(tmp_path, nested, workers=2)


def test_non_utf8_checkpoint_path_one_answer(tmp_path) -> None:
    """protobuf hands a non-UTF-8 proto2 string over as bytes: every reader accepts it, same numbers."""
    runs = known_runs()
    path = write_file(tmp_path / "latin1.tfrecord", [payload(run, Layout(path=b"caf\xe9")) for run in runs])
    tables = convert_file(path, workers=1)
    _assert_holds(tables, runs)
    _tf_agrees(path, tables)
    from nbcompile.nasbench.records import parse_record

    record = parse_record(payload(runs[0], Layout(path=b"caf\xe9")))
    assert record.metrics.evaluation_data[0].checkpoint_path == "caf\udce9"


def test_epoch_budgets_are_bounded(tmp_path) -> None:
    from nbcompile.nasbench.convert import MAX_EPOCH_BUDGETS

    runs = known_runs(epochs=tuple(range(1, MAX_EPOCH_BUDGETS + 2)), repeats=1)[: MAX_EPOCH_BUDGETS + 1]
    payloads = [payload(run, Layout()) for run in runs]
    path = write_file(tmp_path / "budgets.tfrecord", payloads)
    offset = sum(len(p) + 16 for p in payloads[:-1])
    with pytest.raises(
        DatasetError, match=rf"record {MAX_EPOCH_BUDGETS} at byte {offset}: epoch budget 17 .* at most 16"
    ):
        convert_file(path, workers=1)
    write_file(path, payloads[:-1])
    assert convert_file(path, workers=1).epochs.tolist() == list(range(1, 17))


def test_the_table_stays_proportional_to_the_file(tmp_path) -> None:
    runs = known_runs(repeats=1)
    many = [Run(f"{i:032x}", 108, "0100", ("input", "output"), 1, runs[0].evaluations) for i in range(40)]
    hot = [runs[0]] * 60  # one cell with 60 runs at one budget: 41 cells x 60 slots for 100 records
    path = write_file(tmp_path / "sparse.tfrecord", [payload(run, Layout()) for run in many + hot])
    with pytest.raises(DatasetError, match="would need a table 24 times the 100 records"):
        convert_file(path, workers=1)


def test_a_fifo_is_refused_without_blocking(tmp_path) -> None:
    import os

    fifo = tmp_path / "dataset.tfrecord"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match="not a regular file"):
        NASBench(fifo, cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetError, match="not a regular file"):
        convert_file(fifo)  # the command line says so in one line: test_cli_data.py


def test_a_file_truncated_during_a_multi_worker_conversion(tmp_path, monkeypatch) -> None:
    from nbcompile.nasbench import convert

    runs = known_runs(epochs=(4, 12, 36, 108))
    path = write_file(tmp_path / "shrinking.tfrecord", [payload(run, Layout()) for run in runs])
    size = path.stat().st_size
    monkeypatch.setattr(convert, "CHUNK_RECORDS", 3)

    def truncate(done: int, total: int) -> None:  # called once the frames are scanned, before any chunk
        if done == 0:
            with open(path, "r+b") as handle:
                handle.truncate(size // 2)

    with pytest.raises(
        DatasetError, match=r"^record \d+ at byte \d+: file ends inside the record \(the file became shorter"
    ):
        convert_file(path, workers=2, progress=truncate)
