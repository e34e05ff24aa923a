"""Running ``nbcompile`` in process for the tests, and what every command's output must look like.

Bad input gives exit code 2 and exactly one ``nbcompile: error: ...`` line on stderr (after the
two lines a dataset's first load prints, where one is loaded), with no traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from nbcompile.cli import main


def make_runner() -> CliRunner:
    """A CliRunner whose result has stdout and stderr apart (click 8.2+ always does)."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        return CliRunner()


def invoke(args: Sequence[str], stdin: str | None = None) -> Result:
    """Run ``nbcompile ARGS`` in process."""
    return make_runner().invoke(main, list(args), input=stdin)


def not_loading_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` other than the two a dataset's first load prints."""
    return [
        line
        for line in stderr.strip().splitlines()
        if not line.startswith(("nbcompile: loading ", "nbcompile: loaded "))
    ]


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit code 2, nothing on stdout and exactly one ``nbcompile: error:`` line on stderr (besides
    a first load's progress lines) holding every fragment; returns that line."""
    stderr = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.stdout, stderr, result.exception)
    assert "Traceback" not in stderr and "Traceback" not in result.stdout
    lines = not_loading_lines(stderr)
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("nbcompile: error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert result.stdout == "", result.stdout
    return line


def jsonl(*specs: Any) -> str:
    """JSON Lines text, one spec (or raw line, if a str) per line."""
    return "".join((s if isinstance(s, str) else json.dumps(s)) + "\n" for s in specs)


def write_spec(directory: Path, content: str | bytes | Any, name: str = "spec.json") -> Path:
    """Write ``content`` (text, bytes, or a JSON-able spec) to ``directory/name``; return the path."""
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def files_in(directory: Path) -> list[str]:
    """Names in ``directory`` (hidden ones included); [] when it does not exist."""
    return sorted(os.listdir(directory)) if directory.exists() else []


def assert_no_temp_files(directory: Path) -> None:
    """No hidden or ``.tmp`` file (an atomic write's leftover) in ``directory``."""
    leftovers = [n for n in files_in(directory) if n.startswith(".") or n.endswith(".tmp")]
    assert leftovers == [], leftovers
