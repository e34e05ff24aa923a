"""Synthetic fixtures (nbcompile.synthetic): files in the dataset's format with the real parameter
counts and made-up accuracies, the same bytes whatever the workers, written by ``data fixture``;
named as synthetic, and reported as such by ``data info`` and ``data query``, while a real
dataset's name is never called synthetic."""

from __future__ import annotations

import json

import pytest
from cli_runner import assert_one_line_error, invoke
from dataset_files import records_in

from nbcompile.errors import DatasetError
from nbcompile.space.enumeration import sample_cells
from nbcompile.synthetic.fixture import write_fixture
from nbcompile.synthetic.naming import is_synthetic_dataset


def test_data_info_and_query_say_a_fixture_is_synthetic(small_only108, tmp_path) -> None:
    from nbcompile.nasbench import api

    note = "note: this dataset is SYNTHETIC (a fixture): its accuracies are made up"
    cache = str(tmp_path / "cache")
    text = invoke(["data", "info", str(small_only108), "--cache-dir", cache])
    assert text.exit_code == 0 and text.stdout.splitlines()[-1] == note
    assert (
        json.loads(invoke(["data", "info", str(small_only108), "--cache-dir", cache, "--json"]).stdout)["synthetic"]
        is True
    )
    module_hash = next(iter(api.NASBench(str(small_only108), cache_dir=cache).hash_iterator()))
    assert (
        invoke(["data", "query", str(small_only108), module_hash, "--cache-dir", cache]).stdout.splitlines()[-1] == note
    )
    assert (
        json.loads(invoke(["data", "query", str(small_only108), module_hash, "--cache-dir", cache, "--json"]).stdout)[
            "synthetic"
        ]
        is True
    )
    # opened through its cache folder, the fixture is still recognised (from the manifest's source)
    folder = api.NASBench(str(small_only108), cache_dir=cache).cache_folder
    assert is_synthetic_dataset(api.NASBench(str(folder)))
    assert invoke(["data", "info", str(folder)]).stdout.splitlines()[-1] == note


def test_a_real_looking_name_is_not_called_synthetic(small_only108, tmp_path) -> None:
    from nbcompile.nasbench import api

    real_name = tmp_path / "nasbench_only108.tfrecord"
    real_name.write_bytes(small_only108.read_bytes())
    bench = api.NASBench(str(real_name), cache=False, progress=False)
    assert is_synthetic_dataset(bench) is False
    info = invoke(["data", "info", str(real_name), "--no-cache"])
    assert info.exit_code == 0 and "SYNTHETIC" not in info.stdout
    with pytest.raises(Exception, match="must contain 'synthetic'"):
        write_fixture(tmp_path / "fake.tfrecord", sample_cells(1))


# --- the fixture writer and 'data fixture' ----------------------------------------------------------
def test_fixture_file_is_official_format_with_real_parameter_counts(tmp_path) -> None:
    from nbcompile.compiler.lower import lower
    from nbcompile.space.enumeration import enumerate_cells
    from nbcompile.space.spec import ModelSpec
    from nbcompile.synthetic.fixture import FULL, write_fixture

    cells = list(enumerate_cells(max_vertices=3, workers=1))
    path = tmp_path / "nasbench_synthetic_full.tfrecord"
    assert write_fixture(path, cells, FULL) == 7 * 4 * 3
    records = records_in(path)
    assert [r.epochs for r in records[:12]] == [4, 4, 4, 12, 12, 12, 36, 36, 36, 108, 108, 108]
    by_hash = {c.module_hash: c for c in cells}
    for record in records:
        cell = by_hash[record.module_hash]
        expected = lower(ModelSpec(cell.matrix, cell.ops)).trainable_parameters
        assert record.metrics.trainable_parameters == expected
        final = record.metrics.evaluation_data[2]
        assert final.current_epoch == record.epochs and 0 < final.validation_accuracy < 1
        assert final.validation_accuracy * 9984 == pytest.approx(round(final.validation_accuracy * 9984), abs=1e-3)
    assert records[0].metrics.trainable_parameters == 882_570  # input → output only
    # deterministic: the same bytes again
    again = tmp_path / "again_synthetic.tfrecord"
    write_fixture(again, cells, FULL)
    assert again.read_bytes() == path.read_bytes()


def test_fixture_name_must_say_synthetic(tmp_path) -> None:
    from nbcompile.synthetic.fixture import write_fixture

    with pytest.raises(DatasetError, match="must contain 'synthetic'"):
        write_fixture(tmp_path / "nasbench_only108.tfrecord", [])
    assert not list(tmp_path.iterdir())


def test_cli_data_fixture(tmp_path) -> None:
    out = tmp_path / "nasbench_synthetic_108.tfrecord"
    result = invoke(["data", "fixture", str(out), "--cells", "20"])
    assert result.exit_code == 0, result.output
    assert "wrote 60 records" in result.stderr
    records = records_in(out)
    assert len({r.module_hash for r in records}) == 20
    assert {r.num_vertices for r in records} >= {6, 7}  # spread over the space, not the first 20
    other = tmp_path / "nasbench_synthetic_third_party.tfrecord"
    result = invoke(["data", "fixture", str(other), "--cells", "20", "--layout", "third-party"])
    assert result.exit_code == 0, result.output
    assert b"\\n" in other.read_bytes() and other.read_bytes() != out.read_bytes()
    assert [r.metrics.evaluation_data[2] for r in records_in(other)] == [r.metrics.evaluation_data[2] for r in records]
    assert_one_line_error(invoke(["data", "fixture", str(tmp_path / "nasbench.tfrecord")]), "must contain 'synthetic'")


def test_fixture_written_by_several_processes_is_the_same_file(tmp_path, monkeypatch) -> None:
    from nbcompile.space.enumeration import sample_cells
    from nbcompile.synthetic import fixture

    monkeypatch.setattr(fixture, "_BATCH_CELLS", 3)  # several batches, in flight at once
    cells = sample_cells(20)
    one, two = tmp_path / "one_synthetic.tfrecord", tmp_path / "two_synthetic.tfrecord"
    assert fixture.write_fixture(one, cells, workers=1) == fixture.write_fixture(two, cells, workers=2) == 60
    assert one.read_bytes() == two.read_bytes()
