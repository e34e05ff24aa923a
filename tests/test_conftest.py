"""The suite's own guards: a test that leaves process-wide state changed, or changes a data file that
the tests share, fails, naming the change; and each test has a default cache folder of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")


def test_a_test_that_leaks_process_state_fails(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # the inner session starts as one from a shell does: without this test's own default cache folder
    monkeypatch.delenv("NBCOMPILE_CACHE_DIR")
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(
        test_leaks="""
        import os
        import torch

        def test_threads():
            torch.set_num_threads(1 if torch.get_num_threads() > 1 else 2)

        def test_environment():
            os.environ["NBCOMPILE_CACHE_DIR"] = "/nowhere"

        def test_restores(monkeypatch):
            monkeypatch.setenv("NBCOMPILE_CACHE_DIR", "/nowhere")
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            torch.set_num_threads(before)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_threads*",
            "the test changed process-wide state: torch threads: *",
            "*ERROR at teardown of test_environment*",
            "the test changed process-wide state: environ: NBCOMPILE_CACHE_DIR None -> '/nowhere'",
        ]
    )


def test_a_test_that_changes_a_shared_data_file_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(
        test_shared="""
        def test_reads(cells_npz):
            assert cells_npz.read_bytes()

        def test_appends(cells_npz):
            with open(cells_npz, "ab") as handle:
                handle.write(b"more")

        def test_reads_again(cells_npz):
            assert cells_npz.read_bytes()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_appends*", "the test changed shared data files: *cells.npz"]
    )


def test_a_test_gets_a_default_cache_folder_of_its_own(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = Path(os.environ["NBCOMPILE_CACHE_DIR"])
    assert folder.is_relative_to(tmp_path_factory.getbasetemp()) and not folder.exists()
