"""The dataset cache: written once and memory-mapped, keyed on its source, never read silently
when changed behind nbcompile's back, safe against concurrent writers and interrupted saves.

Kills and concurrent processes are in test_stress.py (marker ``stress``)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_runner import assert_one_line_error, invoke, not_loading_lines
from dataset_files import assert_tables_equal, write_many_cells
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbcompile.nasbench import NASBench
from nbcompile.nasbench import cache as cache_module
from nbcompile.nasbench.cache import CacheWarning, StaleCacheError
from nbcompile.nasbench.convert import convert_file
from nbcompile.synthetic.fixture import ONLY_108, write_fixture


def _all_means(dataset: NASBench, epochs: int = 108) -> dict[str, float]:
    """Mean final validation accuracy per cell."""
    return {
        h: dataset.query(dataset.spec_of(h), epochs, reduce="mean")["validation_accuracy"]
        for h in dataset.hash_iterator()
    }


def _reference_means(path: Path) -> dict[str, float]:
    """:func:`_all_means` from the uncached conversion."""
    return _all_means(NASBench(path, cache=False, workers=1, progress=False))


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


# --- written once, then memory-mapped -------------------------------------------------------------


def test_cache_is_written_once_then_memory_mapped(only108, tmp_path) -> None:
    first = NASBench(only108, cache_dir=tmp_path)
    assert first.converted and first.cache_folder.parent == tmp_path
    names = sorted(p.name for p in first.cache_folder.iterdir())
    assert names == sorted([f"{n}.npy" for n in first.tables.names()] + ["manifest.json"])
    second = NASBench(only108, cache_dir=tmp_path)
    assert not second.converted and second.cache_folder == first.cache_folder
    assert isinstance(second.tables.metrics.base, np.memmap) or isinstance(second.tables.metrics.base.base, np.memmap)
    assert_tables_equal(second.tables, convert_file(only108, workers=1))
    assert len(list(tmp_path.iterdir())) == 1  # no temporary folder left
    direct = NASBench(first.cache_folder)  # a cache folder can be opened itself
    assert len(direct) == len(first)


def test_cache_key_follows_the_file(tmp_path, cells) -> None:
    path = tmp_path / "a_synthetic.tfrecord"
    write_fixture(path, cells[:3], ONLY_108)
    before = NASBench(path, cache_dir=tmp_path / "cache").cache_folder
    write_fixture(path, cells[3:6], ONLY_108)  # same size class, new content and mtime
    after = NASBench(path, cache_dir=tmp_path / "cache")
    assert after.converted and after.cache_folder != before
    assert set(after.hash_iterator()) == {c.module_hash for c in cells[3:6]}


def test_interrupted_cache_write_leaves_nothing_that_loads(only108, tmp_path, monkeypatch) -> None:
    calls = []
    real_save = np.save

    def failing_save(file, array, **kwargs):
        calls.append(file)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_save(file, array, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        NASBench(only108, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(np, "save", real_save)
    assert NASBench(only108, cache_dir=tmp_path).converted


def test_default_cache_folder_is_xdg(only108, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NBCOMPILE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert NASBench(only108).cache_folder.parent == tmp_path / "xdg" / "nbcompile"
    monkeypatch.setenv("NBCOMPILE_CACHE_DIR", str(tmp_path / "mine"))
    assert NASBench(only108).cache_folder.parent == tmp_path / "mine"


def test_no_cache_writes_nothing(only108, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NBCOMPILE_CACHE_DIR", str(tmp_path / "cache"))
    bench = NASBench(only108, cache=False)
    assert bench.converted and bench.cache_folder is None and not (tmp_path / "cache").exists()


# --- a changed cache is never read silently -------------------------------------------------------


def test_manifest_records_shape_dtype_and_checksum(small_only108, tmp_path) -> None:
    folder = _cached(small_only108, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, entry in manifest["arrays"].items():
        array = np.load(folder / f"{name}.npy", allow_pickle=False)
        assert entry["shape"] == list(array.shape) and entry["dtype"] == array.dtype.str
        import crc32c

        assert entry["crc32c"] == crc32c.crc32c(array.tobytes())  # computed here independently
    assert manifest["source_crc32c"] == __import__("crc32c").crc32c(small_only108.read_bytes())


def test_value_changed_through_a_memory_map_is_noticed(small_only108, tmp_path) -> None:
    folder = _cached(small_only108, tmp_path)
    expected = _reference_means(small_only108)
    metrics = np.load(folder / "metrics.npy", mmap_mode="r+")
    metrics[0, 0, :, 6] = 0.123  # what a careless user of the memory map does
    metrics.flush()
    del metrics
    dataset = _load_warns(small_only108, tmp_path, "metrics.npy does not match its checksum")
    assert _all_means(dataset) == expected
    assert not NASBench(small_only108, cache_dir=tmp_path, workers=1).converted  # the cache was rewritten


def test_query_cli_warns_in_one_line_and_prints_the_true_value(small_only108, tmp_path) -> None:
    folder = _cached(small_only108, tmp_path)
    first = next(iter(NASBench(small_only108, cache_dir=tmp_path).hash_iterator()))
    truth = _reference_means(small_only108)[first]
    metrics = np.load(folder / "metrics.npy", mmap_mode="r+")
    metrics[0, 0, :, 6] = 0.123
    metrics.flush()
    del metrics
    result = invoke(["data", "query", str(small_only108), first, "--mean", "--json", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["validation_accuracy"] == truth
    warning_lines = not_loading_lines(result.stderr)
    assert len(warning_lines) == 1 and warning_lines[0].startswith("nbcompile: warning: ")
    assert "converting the source again" in warning_lines[0]


@pytest.mark.parametrize("names", [("metrics",), ("hashes", "parameters"), ("num_vertices",)])
def test_arrays_swapped_from_another_cache_are_noticed(small_only108, other_only108, tmp_path, names) -> None:
    mine, theirs = _cached(small_only108, tmp_path), _cached(other_only108, tmp_path)
    expected = _reference_means(small_only108)
    for name in names:
        shutil.copyfile(theirs / f"{name}.npy", mine / f"{name}.npy")
    dataset = _load_warns(small_only108, tmp_path, "does not match its checksum")
    assert _all_means(dataset) == expected


def test_arrays_from_a_full_cache_are_noticed(small_only108, full, tmp_path) -> None:
    mine, theirs = _cached(small_only108, tmp_path), _cached(full, tmp_path)
    for name in ("epochs", "repeats", "metrics"):
        shutil.copyfile(theirs / f"{name}.npy", mine / f"{name}.npy")
    dataset = _load_warns(small_only108, tmp_path, "the manifest says")
    assert dataset.valid_epochs == {108}
    assert _all_means(dataset) == _reference_means(small_only108)


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
def test_changed_arrays_are_noticed(small_only108, tmp_path, name, replace, fragment) -> None:
    folder = _cached(small_only108, tmp_path)
    np.save(folder / f"{name}.npy", replace(np.load(folder / f"{name}.npy")), allow_pickle=False)
    _load_warns(small_only108, tmp_path, fragment)


def test_consistent_but_impossible_arrays_are_noticed(small_only108, tmp_path) -> None:
    """Arrays changed *and* the manifest rewritten to match: the tables' own checks still refuse."""
    folder = _cached(small_only108, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    vertices = np.load(folder / "num_vertices.npy")
    vertices[0] = 9
    np.save(folder / "num_vertices.npy", vertices, allow_pickle=False)
    manifest["arrays"]["num_vertices"] = cache_module.array_entry(vertices)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StaleCacheError, match=r"num_vertices outside 1\.\.7"):
        cache_module.load_tables(folder)
    _load_warns(small_only108, tmp_path, "num_vertices outside")


@pytest.mark.parametrize("text", ["[]", "{", '"x"', "{}", '{"format_version": 2}'])
def test_broken_manifests(small_only108, tmp_path, text) -> None:
    folder = _cached(small_only108, tmp_path)
    (folder / "manifest.json").write_text(text)
    _load_warns(small_only108, tmp_path, "manifest|cache format|op codes")
    (folder / "manifest.json").write_text(text)
    assert_one_line_error(invoke(["data", "info", str(folder)]), str(folder))  # a cache folder opened itself


def test_cache_of_another_source_under_this_name_is_noticed(small_only108, other_only108, tmp_path) -> None:
    mine, theirs = _cached(small_only108, tmp_path), _cached(other_only108, tmp_path)
    shutil.rmtree(mine)
    shutil.copytree(theirs, mine)
    dataset = _load_warns(small_only108, tmp_path, "another source file")
    assert _all_means(dataset) == _reference_means(small_only108)


def test_folder_without_manifest_is_replaced_silently(small_only108, tmp_path) -> None:
    folder = _cached(small_only108, tmp_path)
    (folder / "manifest.json").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset = NASBench(small_only108, cache_dir=tmp_path, workers=1)
    assert dataset.converted and (folder / "manifest.json").exists()


def test_data_verify(small_only108, tmp_path) -> None:
    folder = _cached(small_only108, tmp_path)
    result = invoke(["data", "verify", str(folder)])
    assert result.exit_code == 0 and "ok:" in result.stdout and "source checked" in result.stdout, result.output
    by_source = invoke(["data", "verify", str(small_only108), "--cache-dir", str(tmp_path)])
    assert by_source.exit_code == 0 and by_source.stdout == result.stdout
    metrics = np.load(folder / "metrics.npy", mmap_mode="r+")
    metrics[-1, 0, 0, 0] += 1.0
    metrics.flush()
    del metrics
    assert_one_line_error(invoke(["data", "verify", str(folder)]), "metrics.npy does not match its checksum")
    assert_one_line_error(invoke(["data", "verify", str(tmp_path / "nope")]), "no such file")


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
    assert_one_line_error(
        invoke(["data", "verify", str(source), "--cache-dir", str(tmp_path / "cache")]),
        "changed since it was converted",
    )


@pytest.fixture(scope="module")
def small_cache(small_only108, tmp_path_factory) -> Path:
    return _cached(small_only108, tmp_path_factory.mktemp("small_cache"))


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
    # the arrays written, memory-mapped from the untouched cache: loaded from the copy, they would
    # be mapped from the very file flipped below, and change with it
    original = cache_module.load_tables(small_cache)[0]
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
    assert_tables_equal(loaded[0], original)


# --- the cache folder: permissions, temporaries, races --------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o755), (0o002, 0o775), (0o077, 0o700)])
def test_cache_folders_follow_the_umask(small_only108, tmp_path, umask, mode) -> None:
    previous = os.umask(umask)
    try:
        folder = _cached(small_only108, tmp_path)
    finally:
        os.umask(previous)
    assert folder.stat().st_mode & 0o777 == mode
    assert (folder / "metrics.npy").stat().st_mode & 0o777 == mode & 0o666


def _temporary(root: Path, host: str, pid: int) -> Path:
    folder = root / f".nasbench-0123456789abcdef01234567.{host}.{pid}.x1y2z3.tmp"
    folder.mkdir(parents=True)
    (folder / "metrics.npy").write_bytes(b"partial")
    return folder


def test_stale_temporaries_are_removed(small_only108, tmp_path) -> None:
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
    _cached(small_only108, tmp_path)
    _cached(small_only108, tmp_path)  # a cache hit cleans too
    assert not stale.exists() and not foreign_old.exists()
    assert alive.exists() and foreign_new.exists()  # writers that may still be working


def test_losing_the_save_race_is_silent_success(small_only108, tmp_path, monkeypatch) -> None:
    folder = _cached(small_only108, tmp_path)
    dataset = NASBench(small_only108, cache=False, workers=1)
    key = cache_module.SourceKey.of(small_only108)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache_module.save_tables(dataset.tables, folder, small_only108, key, {})  # the folder is there, finished
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]

    shutil.rmtree(folder)
    real_rename = os.rename

    def other_process_wins(source, target):  # another process renames its copy in between
        if Path(target) == folder and not folder.exists():
            real_rename(source, target)
            raise OSError(39, "Directory not empty")
        return real_rename(source, target)

    monkeypatch.setattr(os, "rename", other_process_wins)
    cache_module.save_tables(dataset.tables, folder, small_only108, key, {})
    monkeypatch.setattr(os, "rename", real_rename)
    assert cache_module.load_tables(folder, key) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


def test_a_damaged_folder_in_the_way_is_replaced(small_only108, tmp_path) -> None:
    folder = _cached(small_only108, tmp_path)
    (folder / "metrics.npy").write_bytes(b"garbage")
    dataset = _load_warns(small_only108, tmp_path, "metrics.npy cannot be read")
    assert _all_means(dataset) == _reference_means(small_only108)
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]
