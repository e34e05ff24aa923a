"""The ``nbcompile`` group: --version and --help, a real process, click's usage errors in one line,
commands loaded lazily, and the group's handling of errors, warnings, a closed pipe and SIGTERM
for every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import assert_no_temp_files, assert_one_line_error, files_in, invoke, write_spec
from example_cells import BELOW_DIAGONAL, INCEPTION_HASH, INCEPTION_MODULE_NAME, REPO, TWO_VERTEX

import nbcompile
from nbcompile.cli import main


def _source_tree_environment() -> dict[str, str]:
    """The environment of a fresh Python process that imports nbcompile from this source tree."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_version() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"nbcompile, version {nbcompile.__version__}"


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["compile", "--help"], ["info", "-h"]])
def test_help(args: list[str]) -> None:
    result = invoke(args)
    assert result.exit_code == 0 and result.stderr == ""
    assert "Usage:" in result.stdout
    if args[0] == "compile":
        for option in ("--out-dir", "--name", "--canonical", "--stem-channels", "--in-channels"):
            assert option in result.stdout
    elif args[0] == "info":
        assert "--json" in result.stdout
    else:
        assert "compile" in result.stdout and "info" in result.stdout


# --- a real process -------------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run the CLI of this source tree in a fresh Python process."""
    return subprocess.run(
        [sys.executable, "-c", "from nbcompile.cli import main; main()", *args],
        cwd=cwd,
        env=_source_tree_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_subprocess_compile_and_info(tmp_path: Path) -> None:
    out = tmp_path / "out"
    compiled = run_cli("compile", "examples/inception.json", "-o", str(out))
    assert compiled.returncode == 0, compiled.stderr
    written = out / f"{INCEPTION_MODULE_NAME}.py"
    assert compiled.stdout.splitlines() == [str(written)]
    source = written.read_text()
    assert f'MODULE_HASH = "{INCEPTION_HASH}"' in source
    assert "TRAINABLE_PARAMETERS = 2694282" in source
    assert_no_temp_files(out)

    info = run_cli("info", "examples/inception.json", "--json")
    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    assert report["module_hash"] == INCEPTION_HASH
    assert report["trainable_parameters"] == 2694282


def test_subprocess_bad_input(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, BELOW_DIAGONAL)
    out = tmp_path / "out"
    result = run_cli("compile", str(spec), "-o", str(out))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"nbcompile: error: {spec}: matrix[4][1] = 1 is below the diagonal")
    assert result.stdout == ""
    assert files_in(out) == []


# --- click's own usage errors are one line too ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["compile"], "Missing argument 'SPECS...'"),
        (["compile", "{spec}", "--stem-channels", "abc"], "'abc' is not a valid integer"),
        (["compile", "{spec}", "-o", "{spec}"], "is a file"),
        (["info", "{spec}", "{spec}"], "unexpected extra argument"),
        (["compile", "{spec}", "--frobnicate"], "No such option '--frobnicate'"),
        (["transmogrify"], "No such command 'transmogrify'"),
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    spec = write_spec(tmp_path, TWO_VERTEX)
    result = invoke([arg.replace("{spec}", str(spec)) for arg in args])
    line = assert_one_line_error(result, fragment)
    assert "--help'" in line


# --- the group: commands loaded lazily, bad input handled for every command -----------------------


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` (its stdout is discarded)."""
    probe = f"import sys\n{code}\nsys.stderr.write('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env=_source_tree_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    return set(done.stderr.splitlines())


@pytest.mark.parametrize(
    "code",
    [
        "import nbcompile.cli",
        "from nbcompile.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    ],
    ids=["import", "--help"],
)
def test_the_group_imports_no_command_and_no_torch(code: str) -> None:
    from nbcompile.cli import COMMANDS

    loaded = _modules_after(code)
    assert "nbcompile.cli" in loaded
    command_modules = {entry.target.partition(":")[0] for entry in COMMANDS.values()}
    assert command_modules & loaded == set()
    assert {"torch", "numpy", "rich", "nbcompile.cli._common", "nbcompile.compiler"} & loaded == set()


def test_every_registered_command_resolves_and_has_help() -> None:
    import click

    from nbcompile.cli import COMMANDS

    listing = invoke(["--help"]).stdout
    context = click.Context(main)
    for name, entry in COMMANDS.items():
        command = main.get_command(context, name)
        assert isinstance(command, click.Command) and command.name == name, entry
        assert command.help and entry.short_help.endswith(".")
        assert f"  {name} " in listing and entry.short_help in listing  # one line: not wrapped
        subcommands = command.list_commands(context) if isinstance(command, click.Group) else [None]
        for subcommand in subcommands:
            result = invoke([name, *([subcommand] if subcommand else []), "--help"])
            assert result.exit_code == 0 and result.stdout.startswith("Usage:"), (name, subcommand)


#: A group with commands that know nothing of nbcompile's error handling, one of them nested.
GROUP_SCRIPT = """
import itertools, sys, time, warnings
import click
from nbcompile.cli._group import LazyGroup
from nbcompile.errors import ConfigError, SpecError

@click.group(cls=LazyGroup, lazy_commands={})
def group():
    pass

@group.group()
def nested():
    pass

@nested.command()
def bad():
    raise SpecError("cell.json: matrix must be square\\nsecond line")

@group.command()
def flag():
    raise ConfigError("stem_channels must be positive", field="stem_channels")

@group.command()
def missing():
    open("/surely/not/here.json")

@group.command()
def warn():
    warnings.warn("careful\\nmore")
    click.echo("done")

@group.command()
def forever():
    for number in itertools.count():
        click.echo(number)

@group.command()
def sleep():
    click.echo("ready", err=True)
    time.sleep(60)

group(sys.argv[1:], prog_name="nbcompile")
"""


def run_group(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", GROUP_SCRIPT, *args],
        env=_source_tree_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["nested", "bad"], "nbcompile: error: cell.json: matrix must be square"),
        (["flag"], "nbcompile: error: --stem-channels must be positive"),
        (["missing"], "nbcompile: error: [Errno 2] No such file or directory: '/surely/not/here.json'"),
        (["nested", "worse"], "nbcompile: error: No such command 'worse'. (see 'nbcompile nested --help')"),
    ],
)
def test_every_command_of_the_group_reports_bad_input_in_one_line(args: list[str], line: str) -> None:
    done = run_group(*args)
    assert (done.returncode, done.stderr, done.stdout) == (2, line + "\n", "")


def test_the_group_makes_warnings_one_line() -> None:
    done = run_group("warn")
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "nbcompile: warning: careful\n")


def test_the_group_stops_quietly_when_the_reader_goes_away() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", GROUP_SCRIPT, "forever"],
        env=_source_tree_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdout.readline() == b"0\n"
    process.stdout.close()  # like `| head -1`
    assert process.wait(timeout=60) == 1
    assert process.stderr is not None and process.stderr.read() == b""


def test_the_group_unwinds_on_sigterm() -> None:
    import signal

    process = subprocess.Popen(
        [sys.executable, "-c", GROUP_SCRIPT, "sleep"],
        env=_source_tree_environment(),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None and process.stderr.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    assert "Traceback" not in process.stderr.read()
