"""The suite's own guard: a test that leaves process-wide state changed fails, naming the change."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")


def test_a_test_that_leaks_process_state_fails(pytester: pytest.Pytester) -> None:
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
