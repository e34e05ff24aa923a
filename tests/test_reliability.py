"""Issue 13: the cache under tampering, missing runs, refusing before work, and process pools.

Kills and concurrent processes are in test_stress.py (marker ``stress``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from many_cells import write_many_cells
from strategies import INCEPTION, not_loading_lines

from nbcompile.cli import main
from nbcompile.errors import DatasetError
from nbcompile.nasbench import NASBench
from nbcompile.nasbench import cache as cache_module
from nbcompile.nasbench.cache import CacheWarning, StaleCacheError
from nbcompile.nasbench.tfrecord import frame
from nbcompile.nasbench.writer import encode_record
from nbcompile.parallel import ordered_map
from nbcompile.search import Budget, SearchOptions, algorithms, random_search
from nbcompile.space.enumeration import enumerate_cells, sample_cells
from nbcompile.synthetic.fixture import FULL, ONLY_108, fixture_records, write_fixture

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cells():
    return sample_cells(12)


@pytest.fixture(scope="module")
def small(tmp_path_factory, cells) -> Path:
    path = tmp_path_factory.mktemp("data") / "small_synthetic.tfrecord"
    write_fixture(path, cells, ONLY_108)
    return path


@pytest.fixture(scope="module")
def other(tmp_path_factory, cells) -> Path:
    """Same number of cells and budgets as ``small``, other cells: arrays of the same shapes."""
    path = tmp_path_factory.mktemp("data") / "other_synthetic.tfrecord"
    write_fixture(path, sample_cells(13)[1:], ONLY_108)
    return path


@pytest.fixture(scope="module")
def full(tmp_path_factory, cells) -> Path:
    path = tmp_path_factory.mktemp("data") / "full_synthetic.tfrecord"
    write_fixture(path, cells, FULL)
    return path


def _run(*args: str, stdin: str | None = None):
    return CliRunner().invoke(main, list(args), input=stdin)


def _one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    lines = not_loading_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("nbcompile: error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _reference_means(path: Path, epochs: int = 108) -> dict[str, float]:
    """Mean final validation accuracy per cell, from the uncached conversion."""
    dataset = NASBench(path, cache=False, workers=1, progress=False)
    return {
        h: dataset.query(dataset.spec_of(h), epochs, reduce="mean")["validation_accuracy"]
        for h in dataset.hash_iterator()
    }


def _all_means(dataset: NASBench, epochs: int = 108) -> dict[str, float]:
    return {
        h: dataset.query(dataset.spec_of(h), epochs, reduce="mean")["validation_accuracy"]
        for h in dataset.hash_iterator()
    }


def _cached(path: Path, cache_dir: Path) -> Path:
    dataset = NASBench(path, cache_dir=cache_dir, workers=1, progress=False)
    assert dataset.cache_folder is not None
    return dataset.cache_folder


def _load_warns(path: Path, cache_dir: Path, fragment: str) -> NASBench:
    with pytest.warns(CacheWarning, match=fragment) as caught:
        dataset = NASBench(path, cache_dir=cache_dir, workers=1, progress=False)
    assert all("\n" not in str(w.message) for w in caught)
    assert dataset.converted
    return dataset


# --- a tampered cache is never read silently ----------------------------------------------------
def test_manifest_records_shape_dtype_and_checksum(small, tmp_path) -> None:
    folder = _cached(small, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, entry in manifest["arrays"].items():
        array = np.load(folder / f"{name}.npy", allow_pickle=False)
        assert entry["shape"] == list(array.shape) and entry["dtype"] == array.dtype.str
        import crc32c

        assert entry["crc32c"] == crc32c.crc32c(array.tobytes())  # computed here independently
    assert manifest["source_crc32c"] == __import__("crc32c").crc32c(small.read_bytes())


def test_value_changed_through_a_memory_map_is_noticed(small, tmp_path) -> None:
    folder = _cached(small, tmp_path)
    expected = _reference_means(small)
    metrics = np.load(folder / "metrics.npy", mmap_mode="r+")
    metrics[0, 0, :, 6] = 0.123  # what a careless user of the memory map does
    metrics.flush()
    del metrics
    dataset = _load_warns(small, tmp_path, "metrics.npy does not match its checksum")
    assert _all_means(dataset) == expected
    assert not NASBench(small, cache_dir=tmp_path, workers=1).converted  # the cache was rewritten


def test_query_cli_warns_in_one_line_and_prints_the_true_value(small, tmp_path) -> None:
    folder = _cached(small, tmp_path)
    first = next(iter(NASBench(small, cache_dir=tmp_path).hash_iterator()))
    truth = _reference_means(small)[first]
    metrics = np.load(folder / "metrics.npy", mmap_mode="r+")
    metrics[0, 0, :, 6] = 0.123
    metrics.flush()
    del metrics
    result = _run("data", "query", str(small), first, "--mean", "--json", "--cache-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["validation_accuracy"] == truth
    warning_lines = not_loading_lines(result.stderr)
    assert len(warning_lines) == 1 and warning_lines[0].startswith("nbcompile: warning: ")
    assert "converting the source again" in warning_lines[0]


@pytest.mark.parametrize("names", [("metrics",), ("hashes", "parameters"), ("num_vertices",)])
def test_arrays_swapped_from_another_cache_are_noticed(small, other, tmp_path, names) -> None:
    mine, theirs = _cached(small, tmp_path), _cached(other, tmp_path)
    expected = _reference_means(small)
    for name in names:
        shutil.copyfile(theirs / f"{name}.npy", mine / f"{name}.npy")
    dataset = _load_warns(small, tmp_path, "does not match its checksum")
    assert _all_means(dataset) == expected


def test_arrays_from_a_full_cache_are_noticed(small, full, tmp_path) -> None:
    mine, theirs = _cached(small, tmp_path), _cached(full, tmp_path)
    for name in ("epochs", "repeats", "metrics"):
        shutil.copyfile(theirs / f"{name}.npy", mine / f"{name}.npy")
    dataset = _load_warns(small, tmp_path, "the manifest says")
    assert dataset.valid_epochs == {108}
    assert _all_means(dataset) == _reference_means(small)


@pytest.mark.parametrize(
    ("name", "replace", "fragment"),
    [
        ("parameters", lambda a: a.astype(np.float64), "the manifest says"),
        ("hashes", lambda a: a[:-1], "the manifest says"),
        (
            "num_vertices",
            lambda a: np.where(np.arange(len(a)) == 0, 9, a).astype(a.dtype),
            "does not match its checksum",
        ),
    ],
)
def test_changed_arrays_are_noticed(small, tmp_path, name, replace, fragment) -> None:
    folder = _cached(small, tmp_path)
    np.save(folder / f"{name}.npy", replace(np.load(folder / f"{name}.npy")), allow_pickle=False)
    _load_warns(small, tmp_path, fragment)


def test_consistent_but_impossible_arrays_are_noticed(small, tmp_path) -> None:
    """Arrays changed *and* the manifest rewritten to match: the tables' own checks still refuse."""
    folder = _cached(small, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    vertices = np.load(folder / "num_vertices.npy")
    vertices[0] = 9
    np.save(folder / "num_vertices.npy", vertices, allow_pickle=False)
    manifest["arrays"]["num_vertices"] = cache_module.array_entry(vertices)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StaleCacheError, match=r"num_vertices outside 1\.\.7"):
        cache_module.load_tables(folder)
    _load_warns(small, tmp_path, "num_vertices outside")


@pytest.mark.parametrize("text", ["[]", "{", '"x"', "{}", '{"format_version": 2}'])
def test_broken_manifests(small, tmp_path, text) -> None:
    folder = _cached(small, tmp_path)
    (folder / "manifest.json").write_text(text)
    _load_warns(small, tmp_path, "manifest|cache format|op codes")
    (folder / "manifest.json").write_text(text)
    _one_line_error(_run("data", "info", str(folder)), str(folder))  # a cache folder opened itself


def test_cache_of_another_source_under_this_name_is_noticed(small, other, tmp_path) -> None:
    mine, theirs = _cached(small, tmp_path), _cached(other, tmp_path)
    shutil.rmtree(mine)
    shutil.copytree(theirs, mine)
    dataset = _load_warns(small, tmp_path, "another source file")
    assert _all_means(dataset) == _reference_means(small)


def test_folder_without_manifest_is_replaced_silently(small, tmp_path) -> None:
    folder = _cached(small, tmp_path)
    (folder / "manifest.json").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = NASBench(small, cache_dir=tmp_path, workers=1)
    assert dataset.converted and (folder / "manifest.json").exists()


def test_data_verify(small, tmp_path) -> None:
    folder = _cached(small, tmp_path)
    result = _run("data", "verify", str(folder))
    assert result.exit_code == 0 and "ok:" in result.stdout and "source checked" in result.stdout, result.output
    by_source = _run("data", "verify", str(small), "--cache-dir", str(tmp_path))
    assert by_source.exit_code == 0 and by_source.stdout == result.stdout
    metrics = np.load(folder / "metrics.npy", mmap_mode="r+")
    metrics[-1, 0, 0, 0] += 1.0
    metrics.flush()
    del metrics
    _one_line_error(_run("data", "verify", str(folder)), "metrics.npy does not match its checksum")
    _one_line_error(_run("data", "verify", str(tmp_path / "nope")), "no such file")


def test_source_edited_in_place_with_its_mtime_restored(tmp_path) -> None:
    """The documented limit of the cache key (size, mtime, first and last MiB), and what finds it:
    data verify, which checks the whole source."""
    source = write_many_cells(tmp_path / "edited.tfrecord", 4000)
    assert source.stat().st_size > 3 * (1 << 20)
    _cached(source, tmp_path / "cache")
    stat = source.stat()
    with open(source, "r+b") as handle:  # one hex digit of a module hash in the middle
        handle.seek(stat.st_size // 2)
        chunk = handle.read(1 << 12)
        at = chunk.index(b'["') + 2
        handle.seek(stat.st_size // 2 + at)
        handle.write(b"g" if chunk[at : at + 1] != b"g" else b"h")
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert not NASBench(source, cache_dir=tmp_path / "cache", workers=1).converted  # the limit
    _one_line_error(
        _run("data", "verify", str(source), "--cache-dir", str(tmp_path / "cache")), "changed since it was converted"
    )


# --- the cache folder: permissions, temporaries, races --------------------------------------------
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o755), (0o002, 0o775), (0o077, 0o700)])
def test_cache_folders_follow_the_umask(small, tmp_path, umask, mode) -> None:
    previous = os.umask(umask)
    try:
        folder = _cached(small, tmp_path)
    finally:
        os.umask(previous)
    assert folder.stat().st_mode & 0o777 == mode
    assert (folder / "metrics.npy").stat().st_mode & 0o777 == mode & 0o666


def _temporary(root: Path, host: str, pid: int) -> Path:
    folder = root / f".nasbench-0123456789abcdef01234567.{host}.{pid}.x1y2z3.tmp"
    folder.mkdir(parents=True)
    (folder / "metrics.npy").write_bytes(b"partial")
    return folder


def test_stale_temporaries_are_removed(small, tmp_path) -> None:
    host = socket.gethostname()
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)  # a pid that no process has now
    stale = _temporary(tmp_path, host, dead)
    alive = _temporary(tmp_path, host, os.getpid())
    foreign_old = _temporary(tmp_path, "elsewhere", 1)
    old = time.time() - cache_module.STALE_SECONDS - 60
    os.utime(foreign_old, (old, old))
    foreign_new = _temporary(tmp_path, "elsewhere", 2)
    _cached(small, tmp_path)
    _cached(small, tmp_path)  # a cache hit cleans too
    assert not stale.exists() and not foreign_old.exists()
    assert alive.exists() and foreign_new.exists()  # writers that may still be working


def test_losing_the_save_race_is_silent_success(small, tmp_path, monkeypatch) -> None:
    folder = _cached(small, tmp_path)
    dataset = NASBench(small, cache=False, workers=1)
    key = cache_module.SourceKey.of(small)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache_module.save_tables(dataset.tables, folder, small, key, {})  # the folder is there, finished
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]

    shutil.rmtree(folder)
    real_rename = os.rename

    def other_process_wins(source, target):  # another process renames its copy in between
        if Path(target) == folder and not folder.exists():
            real_rename(source, target)
            raise OSError(39, "Directory not empty")
        return real_rename(source, target)

    monkeypatch.setattr(os, "rename", other_process_wins)
    cache_module.save_tables(dataset.tables, folder, small, key, {})
    monkeypatch.setattr(os, "rename", real_rename)
    assert cache_module.load_tables(folder, key) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


def test_a_damaged_folder_in_the_way_is_replaced(small, tmp_path) -> None:
    folder = _cached(small, tmp_path)
    (folder / "metrics.npy").write_bytes(b"garbage")
    dataset = _load_warns(small, tmp_path, "metrics.npy cannot be read")
    assert _all_means(dataset) == _reference_means(small)
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


# --- missing runs -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def missing_runs(tmp_path_factory) -> tuple[Path, list]:
    """Every cell of up to 4 vertices at 4 and 108 epochs, except that the first cell has no run
    at 4 epochs, and every 4-epoch accuracy of the second cell is NaN."""
    cells = list(enumerate_cells(max_vertices=4, workers=1))
    payloads = []
    for record in fixture_records(cells, (4, 108)):
        if record.module_hash == cells[0].module_hash and record.epochs == 4:
            continue
        payloads.append(encode_record(record))
    path = tmp_path_factory.mktemp("missing") / "missing_runs_synthetic.tfrecord"
    path.write_bytes(b"".join(frame(p) for p in payloads))
    return path, cells


def test_query_mean_of_a_cell_without_runs_names_cell_and_budget(missing_runs, tmp_path) -> None:
    path, cells = missing_runs
    dataset = NASBench(path, cache_dir=tmp_path, workers=1)
    spec = dataset.spec_of(cells[0].module_hash)
    for reduce in (None, "mean"):
        with pytest.raises(DatasetError, match=f"cell {cells[0].module_hash} has no run at 4 epochs"):
            dataset.query(spec, 4, reduce=reduce)
        with pytest.raises(DatasetError, match="has no run at 4 epochs"):
            dataset.query_many([cells[1].module_hash, cells[0].module_hash], 4, reduce=reduce)
    assert dataset.query(spec, 108, reduce="mean")["validation_accuracy"] > 0
    many = dataset.query_many([c.module_hash for c in cells[1:4]], 108, reduce="mean")
    single = [
        dataset.query(dataset.spec_of(c.module_hash), 108, reduce="mean")["validation_accuracy"] for c in cells[1:4]
    ]
    assert many["validation_accuracy"].tolist() == single
    result = _run(
        "data", "query", str(path), cells[0].module_hash, "--epochs", "4", "--mean", "--cache-dir", str(tmp_path)
    )
    _one_line_error(result, "has no run at 4 epochs")


def test_data_info_without_warnings_and_with_empty_budgets(missing_runs, tmp_path) -> None:
    path, cells = missing_runs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning
        result = _run("data", "info", str(path), "--json", "--cache-dir", str(tmp_path))
    assert result.exit_code == 0 and not_loading_lines(result.stderr) == [], result.output
    budgets = {b["epochs"]: b for b in json.loads(result.stdout)["budgets"]}
    assert budgets[4]["cells_without_runs"] == 1 and budgets[108]["cells_without_runs"] == 0
    assert budgets[4]["runs"] == 3 * (len(cells) - 1)
    assert budgets[4]["best_mean_validation"]["module_hash"] != cells[0].module_hash

    # a budget whose accuracies are all NaN: a cache folder with its metrics changed consistently
    folder = NASBench(path, cache_dir=tmp_path).cache_folder
    nan_cache = tmp_path / "nan_cache"
    shutil.copytree(folder, nan_cache)
    metrics = np.load(nan_cache / "metrics.npy")
    metrics[:, 0] = np.nan
    np.save(nan_cache / "metrics.npy", metrics, allow_pickle=False)
    manifest = json.loads((nan_cache / "manifest.json").read_text())
    manifest["arrays"]["metrics"] = cache_module.array_entry(metrics)
    (nan_cache / "manifest.json").write_text(json.dumps(manifest))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = _run("data", "info", str(nan_cache))
        data = json.loads(_run("data", "info", str(nan_cache), "--json").stdout)
    assert text.exit_code == 0 and "  4 epochs, best mean validation:  none" in text.stdout, text.output
    assert "  4 epochs: 1 cells have no run" in text.stdout
    assert data["budgets"][0]["best_mean_test"] is None and data["budgets"][1]["best_mean_test"] is not None


def test_search_skips_cells_without_runs_and_always_ends(missing_runs, tmp_path) -> None:
    path, cells = missing_runs
    dataset = NASBench(path, cache_dir=tmp_path, workers=1)
    options = SearchOptions(mean_of_repeats=True, epochs=4)
    result = random_search(dataset, Budget(2e4), seed=0, options=options)
    assert cells[0].module_hash not in result.queried_hashes
    assert result.times[-1] > 2e4 and all(t > 0 for t in result.training_times)
    out = tmp_path / "out"
    run = _run(
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
    )
    assert run.exit_code == 0, run.output
    for row in json.loads((out / "results.json").read_text())["runs"]:
        assert cells[0].module_hash not in row["queried_hashes"]


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
    assert counted.queries == 6


def test_search_on_a_partial_dataset_ends_with_a_note(tmp_path, monkeypatch) -> None:
    """Ten 7-vertex cells: random draws (almost) never meet one."""
    monkeypatch.setattr(algorithms, "FRESH_ATTEMPTS", 1000)
    partial = tmp_path / "partial_synthetic.tfrecord"
    write_fixture(partial, sample_cells(400)[-10:], ONLY_108)
    out = tmp_path / "out"
    result = _run(
        "search",
        "--dataset",
        str(partial),
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(out),
        "--budget",
        "50",
        "--budget-kind",
        "queries",
        "--repeats",
        "1",
        "--algo",
        "random",
        "--workers",
        "1",
    )
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stdout.splitlines() if line.startswith("note: 1 of 1 runs ended")]
    assert len(notes) == 1 and "no cell worth a query in 1,000 draws" in notes[0]
    run = json.loads((out / "results.json").read_text())["runs"][0]
    assert run["note"] and len(run["queried_hashes"]) < 51 and len(run["times"]) == len(run["queried_hashes"]) + 1


def test_dedupe_search_that_uses_up_the_dataset_ends_with_what_it_found(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(algorithms, "FRESH_ATTEMPTS", 2000)
    cells = list(enumerate_cells(max_vertices=3, workers=1))
    path = tmp_path / "tiny_synthetic.tfrecord"
    write_fixture(path, cells, ONLY_108)
    dataset = NASBench(path, cache_dir=tmp_path, workers=1)
    result = random_search(dataset, Budget(1e9), seed=1, options=SearchOptions(deduplicate=True))
    assert sorted(result.queried_hashes) == sorted(c.module_hash for c in cells)
    assert "already queried" in result.note


# --- refusing before any work -----------------------------------------------------------------------
def test_search_refuses_before_opening_the_dataset(small, tmp_path) -> None:
    cache = tmp_path / "cache"
    base = ["search", "--dataset", str(small), "--cache-dir", str(cache)]
    out = ["--out", str(tmp_path / "o")]
    for args, fragment in [
        ([*base, "--out", "/dev/null/s"], "--out /dev/null/s: /dev/null is not a folder"),
        ([*base, *out, "--emit-best", "/dev/null/m"], "--emit-best /dev/null/m: /dev/null is not a folder"),
        ([*base, *out, "--budget", "inf"], "--budget inf must be a positive, finite number"),
        ([*base, *out, "--budget", "nan"], "must be a positive, finite number"),
        ([*base, *out, "--algo", ","], "no algorithm given"),
        ([*base, "--out", str(small)], "is a file"),
    ]:
        _one_line_error(_run(*args), fragment)
        assert not cache.exists(), args  # the dataset was not opened
    assert not (tmp_path / "o").exists()


def test_search_refuses_an_impossible_dedupe_budget(small, tmp_path) -> None:
    args = [
        "search",
        "--dataset",
        str(small),
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(tmp_path / "o"),
        "--dedupe",
        "--budget-kind",
        "queries",
        "--budget",
        "1e9",
    ]
    _one_line_error(_run(*args), "--budget 1e+09 queries with --dedupe: the dataset has only 12 cells")
    assert not (tmp_path / "o").exists()


def test_data_commands_refuse_before_work(small, tmp_path) -> None:
    cache = tmp_path / "cache"
    _one_line_error(
        _run("data", "query", str(small), str(tmp_path / "nope.json"), "--cache-dir", str(cache)), "no such file"
    )
    assert not cache.exists()
    _one_line_error(
        _run("data", "fixture", str(tmp_path / "plain.tfrecord"), "--cells", "150000"), "must contain 'synthetic'"
    )
    _one_line_error(_run("data", "fixture", "/dev/null/x_synthetic.tfrecord"), "/dev/null is not a folder")
    fifo = tmp_path / "fifo.tfrecord"
    os.mkfifo(fifo)
    _one_line_error(_run("data", "info", str(fifo), "--cache-dir", str(cache)), "not a regular file")


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc")
def test_enumerate_refuses_an_unwritable_output_before_enumerating() -> None:
    line = _one_line_error(
        _run("enumerate", "--out", "/proc/cells.npz"), "--out /proc/cells.npz: cannot write in /proc"
    )
    assert ".tmp" not in line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--device", "tpu"], "'tpu' is not cpu, cuda or cuda:N"),
        (["--device", "cuda:x"], "is not cpu, cuda or cuda:N"),
        (["--batch-sizes", "100000000"], "batch size 100000000 is not in 1..65536"),
        (["--iters", "0"], "--iters"),
        (["--warmup", "-5"], "--warmup"),
        (["--max-seconds", "-1"], "--max-seconds"),
        (["--max-seconds", "0"], "--max-seconds"),
        (["--json", "/dev/null/b.json"], "--json /dev/null/b.json: /dev/null is not a folder"),
        (["--plot", "/dev/null/p.png"], "--plot /dev/null/p.png: /dev/null is not a folder"),
        (["--json", "/tmp"], "is a directory"),
    ],
)
def test_bench_options_are_checked_before_benchmarking(args, fragment) -> None:
    _one_line_error(_run("bench", str(ROOT / "examples" / "two_vertex.json"), *args), fragment)


def test_compile_refuses_unreadable_spec_files(tmp_path) -> None:
    huge = tmp_path / "huge.json"
    huge.write_text('{"matrix": [[0, ' + "1" * 5000 + '], [0, 0]], "ops": ["input", "output"]}')
    lines = tmp_path / "huge.jsonl"
    lines.write_text(json.dumps(INCEPTION) + "\n" + '{"matrix": ' + "7" * 5000 + "}\n")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as handle:
        np.save(handle, np.zeros(3))
    cells = tmp_path / "cells.npz"
    assert _run("enumerate", "--max-vertices", "3", "--out", str(cells)).exit_code == 0
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(cells.read_bytes()[:-40])
    not_zip = tmp_path / "text.npz"
    not_zip.write_text("hello")
    wrong_arrays = tmp_path / "wrong.npz"
    np.savez(
        wrong_arrays,
        module_hash=np.zeros(2),
        num_vertices=np.zeros(3),
        matrix=np.zeros(1),
        ops=np.zeros(1),
        op_codes=np.zeros(1),
    )
    out = tmp_path / "out"
    for path, fragment in [
        (huge, "not usable JSON"),
        (lines, "huge.jsonl:2: not usable JSON"),
        (npy, "a single .npy array"),
        (truncated, "not a cell file written by 'nbcompile enumerate'"),
        (not_zip, "not a cell file"),
        (wrong_arrays, "other shapes or types"),
    ]:
        _one_line_error(_run("compile", str(path), "-o", str(out)), str(path.name), fragment)
    assert not out.exists()
    assert zipfile.is_zipfile(cells)


def test_a_cell_archive_flagged_encrypted_is_refused_in_one_line(cells_npz, tmp_path) -> None:
    from nbcompile.errors import SpecError
    from nbcompile.space.cellfiles import read_specs

    data = bytearray(cells_npz.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the first member's central directory entry
    data[entry + 8] |= 1  # general purpose flag bit 0: encrypted
    damaged = tmp_path / "encrypted.npz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(SpecError, match=r"not a cell file written by 'nbcompile enumerate' .*encrypted"):
        read_specs(str(damaged))


def test_compile_refuses_an_unwritable_out_dir(tmp_path) -> None:
    spec = tmp_path / "inception.json"
    spec.write_text(json.dumps(INCEPTION))
    _one_line_error(
        _run("compile", str(spec), "-o", "/dev/null/models"), "--out-dir /dev/null/models: /dev/null is not a folder"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["train", "{spec}", "--data", "{tmp}", "--no-plot", "--out", "/dev/null/o"], "--out /dev/null/o: "),
        (["train-merge", "/dev/null/x.tfrecord", "{tmp}"], "OUT /dev/null/x.tfrecord: "),
        (["data", "cifar10", "/dev/null/c", "--url", "file:///nowhere", "--md5", "0"], "DIRECTORY /dev/null/c: "),
    ],
    ids=["train", "train-merge", "data cifar10"],
)
def test_train_and_cifar10_refuse_an_unwritable_output_first(tmp_path, args, line) -> None:
    spec = tmp_path / "inception.json"
    spec.write_text(json.dumps(INCEPTION))
    args = [arg.replace("{spec}", str(spec)).replace("{tmp}", str(tmp_path)) for arg in args]
    _one_line_error(_run(*args), line + "/dev/null is not a folder")


# --- process pools ----------------------------------------------------------------------------------
def _pid_after(seconds: float, value: int) -> int:
    time.sleep(seconds)
    if value < 0:
        raise ValueError("a task failed")
    return os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is as good as gone
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_an_error_kills_the_other_workers_instead_of_waiting(tmp_path) -> None:
    started = time.monotonic()
    tasks = [(0.0, 1), (0.0, 2), (0.2, -1), (60.0, 3), (60.0, 4)]
    results = ordered_map(_pid_after, tasks, 2)
    pids = [next(results), next(results)]
    with pytest.raises(ValueError, match="a task failed"):
        next(results)
    assert time.monotonic() - started < 30  # did not wait for the 60-second tasks
    assert not any(_alive(pid) for pid in set(pids))


def test_a_consumer_that_stops_early_kills_the_workers() -> None:
    results = ordered_map(_pid_after, [(0.0, 1), (0.0, 2)] + [(60.0, i) for i in range(6)], 2)
    pids = {next(results), next(results)}
    results.close()
    assert not any(_alive(pid) for pid in pids)


def test_signal_handlers_are_restored_after_a_pool() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    seen = []
    for _pid in ordered_map(_pid_after, [(0.0, i) for i in range(4)], 2):
        seen.append(signal.getsignal(signal.SIGTERM))
    assert all(handler not in (signal.SIG_DFL, before[0]) for handler in seen)  # taken over meanwhile
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_workers_get_the_default_sigterm_and_ignore_sigint() -> None:
    handlers = list(ordered_map(_handlers, [()] * 2, 2))
    assert handlers == [(int(signal.SIG_DFL), int(signal.SIG_IGN))] * 2


def _handlers() -> tuple[int, int]:
    return int(signal.getsignal(signal.SIGTERM)), int(signal.getsignal(signal.SIGINT))


def test_sigterm_unwinds_and_restores_the_handler(tmp_path) -> None:
    from nbcompile.fileio import atomic_output
    from nbcompile.parallel import Terminated, sigterm_unwinds

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as caught, sigterm_unwinds(), atomic_output(tmp_path / "out.txt") as temporary:
        temporary.write_text("partly written")
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the file is written
        time.sleep(5)
    assert caught.value.code == 143
    assert list(tmp_path.iterdir()) == []  # the temporary file was removed, as on Ctrl-C
    assert signal.getsignal(signal.SIGTERM) == before


def test_experiments_keep_no_dataset_in_the_parent(small, tmp_path) -> None:
    from nbcompile.search import experiment as experiment_module

    experiment = experiment_module.Experiment(
        str(small), ("random",), 2, Budget(3, "queries"), 0, SearchOptions(), str(tmp_path)
    )
    for workers in (1, 2):
        results = experiment_module.run_experiment(experiment, workers)
        assert [r.queries for r in results] == [4, 4]
        assert experiment_module._WORKER_DATASET is None  # set only inside worker processes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(
        ["hashes", "num_vertices", "matrices", "ops", "parameters", "epochs", "repeats", "metrics", "manifest"]
    ),
    where=st.floats(0, 1, exclude_max=True),
    mask=st.integers(1, 255),
)
def test_any_changed_byte_of_a_cache_is_noticed(small_cache, tmp_path_factory, name, where, mask) -> None:
    """Property: after bits of any one byte of any file of a cache flip, loading it either fails in
    one line or gives exactly the arrays written (a flip in a header's padding changes nothing)."""
    folder = tmp_path_factory.mktemp("flip") / small_cache.name
    shutil.copytree(small_cache, folder)
    original = cache_module.load_tables(folder)[0]
    target = folder / ("manifest.json" if name == "manifest" else f"{name}.npy")
    data = bytearray(target.read_bytes())
    data[int(where * len(data))] ^= mask
    target.write_bytes(bytes(data))
    try:
        loaded = cache_module.load_tables(folder)
    except StaleCacheError as error:
        assert "\n" not in str(error)
        return
    assert loaded is not None
    for array_name in original.names():
        before, after = getattr(original, array_name), getattr(loaded[0], array_name)
        assert before.dtype == after.dtype and np.array_equal(before, after, equal_nan=before.dtype.kind == "f"), (
            array_name
        )


@pytest.fixture(scope="module")
def small_cache(small, tmp_path_factory) -> Path:
    return _cached(small, tmp_path_factory.mktemp("small_cache"))


@pytest.fixture(scope="module")
def cells_npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("npz") / "cells.npz"
    assert _run("enumerate", "--max-vertices", "3", "--out", str(path)).exit_code == 0
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255), cut=st.booleans())
def test_damaged_cell_archives_are_refused_or_read_right(cells_npz, tmp_path_factory, where, mask, cut) -> None:
    """Property: a .npz of cells with one byte changed (or cut there) is refused in one line, or
    reads the very cells written (each cell's stored module hash is checked against its graph)."""
    from nbcompile.errors import SpecError
    from nbcompile.space.cellfiles import read_specs

    data = bytearray(cells_npz.read_bytes())
    at = int(where * len(data))
    data[at] ^= mask
    damaged = tmp_path_factory.mktemp("damaged") / "cells.npz"
    damaged.write_bytes(bytes(data[:at] if cut else data))
    expected = [spec.module_hash for _, spec in read_specs(str(cells_npz))]
    try:
        located = read_specs(str(damaged))
    except SpecError as error:
        assert "\n" not in str(error)
        return
    assert [spec.module_hash for _, spec in located if spec.is_valid()] == expected


def test_convert_refuses_a_cache_folder_it_cannot_write_before_converting(small, tmp_path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = _run("data", "convert", str(small), "--cache-dir", str(blocker / "cache"))
    _one_line_error(result, "--cache-dir")
    assert "nbcompile: loading" not in result.stderr  # refused before the conversion started
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
