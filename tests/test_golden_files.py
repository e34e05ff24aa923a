"""The examples and their golden files in generated/: every example compiled with the default
config, up to date, none stale, and made without black; the examples the tests share are the
known cells."""

from __future__ import annotations

import json

import black
import pytest
from example_cells import (
    EXAMPLES,
    GENERATED,
    INCEPTION,
    INCEPTION_JSON,
    PER_STACK_JSON,
    PER_STACK_TRUNCATION,
    TWO_VERTEX,
    TWO_VERTEX_JSON,
)

from nbcompile.compiler.driver import plan_job
from nbcompile.space.cellfiles import read_specs

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))
REGENERATE = "review the change, then run 'python scripts/regenerate_golden.py'"


def example_jobs():
    return [plan_job(spec) for path in EXAMPLE_FILES for _, spec in read_specs(str(path))]


def test_examples_exist() -> None:
    names = {path.stem for path in EXAMPLE_FILES}
    assert {"inception", "two_vertex", "seven_vertex_nine_edge"} <= names


def test_the_example_files_hold_the_known_cells() -> None:
    """Tests pass example files where they mean the cells of example_cells.py."""
    assert json.loads(INCEPTION_JSON.read_text()) == INCEPTION  # to the letter: the notebook's spelling
    assert json.loads(TWO_VERTEX_JSON.read_text()) == TWO_VERTEX
    per_stack = json.loads(PER_STACK_JSON.read_text())
    assert per_stack["matrix"] == PER_STACK_TRUNCATION["matrix"]
    assert [op.removesuffix("-bn-relu") for op in per_stack["ops"]] == PER_STACK_TRUNCATION["ops"]


@pytest.mark.parametrize("job", example_jobs(), ids=lambda job: job.module_name)
def test_golden_files_are_up_to_date(job) -> None:
    """Refresh with: python scripts/regenerate_golden.py"""
    golden = GENERATED / f"{job.module_name}.py"
    assert golden.is_file(), f"missing {golden}: {REGENERATE}"
    assert job.source() == golden.read_text(encoding="utf-8"), f"{golden} is out of date: {REGENERATE}"


def test_no_stale_generated_files() -> None:
    expected = {f"{job.module_name}.py" for job in example_jobs()} | {"__init__.py"}
    assert {path.name for path in GENERATED.glob("*.py")} == expected


@pytest.mark.parametrize("job", example_jobs(), ids=lambda job: job.module_name)
def test_fast_path_skips_black_for_ordinary_cells(job, monkeypatch: pytest.MonkeyPatch) -> None:
    """black is the slow part of code generation; the examples never need it."""

    def no_black(*args, **kwargs):
        raise AssertionError("black was called")

    monkeypatch.setattr(black, "format_str", no_black)
    assert job.source() == (GENERATED / f"{job.module_name}.py").read_text(encoding="utf-8")
