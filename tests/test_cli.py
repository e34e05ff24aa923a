"""Tests of the ``nbcompile`` command line: ``compile``, ``info``, ``--version`` and ``--help``.

Bad input must give exit code 2 and exactly one ``nbcompile: error: ...`` line on stderr (no
traceback), and must leave nothing behind in the output folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import nbcompile
from nbcompile.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
INCEPTION = EXAMPLES / "inception.json"
PER_STACK = EXAMPLES / "per_stack_truncation.json"
TWO_VERTEX = EXAMPLES / "two_vertex.json"

INCEPTION_HASH = "28cfc7874f6d200472e1a9dcd8650aa0"
INCEPTION_FILE = "nb101_28cfc7874f6d_2d1790b6.py"
PER_STACK_HASH = "78e264120b42829179e711a1bee1fd97"
PER_STACK_CHANNELS = {
    "128->128": [128, 43, 43, 42, 128],
    "128->256": [128, 86, 85, 85, 256],
    "256->256": [256, 86, 85, 85, 256],
    "256->512": [256, 171, 171, 170, 512],
    "512->512": [512, 171, 171, 170, 512],
}
#: per_stack_truncation.json with its interior vertices renumbered: same hash, different network.
RELABELED = {
    "matrix": [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
    "ops": ["input", "conv3x3", "conv1x1", "conv3x3", "output"],
}
TWO = {"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]}
#: Three interior vertices that all feed the output.
THREE_FEEDERS = {
    "matrix": [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
    "ops": ["input", "conv3x3", "conv3x3", "conv3x3", "output"],
}


def chain(size: int) -> dict[str, Any]:
    """A straight input -> conv3x3 -> ... -> output cell of ``size`` vertices."""
    matrix = [[int(c == r + 1) for c in range(size)] for r in range(size)]
    return {"matrix": matrix, "ops": ["input"] + ["conv3x3"] * (size - 2) + ["output"]}


BELOW_DIAGONAL = {
    "matrix": [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 1, 0, 0, 0]],
    "ops": ["input", "conv3x3", "conv3x3", "conv3x3", "output"],
}
#: Seven vertices, all on an input->output path, with 10 edges.
TEN_EDGES = {
    "matrix": [
        [0, 1, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    "ops": ["input", "conv3x3", "conv3x3", "conv3x3", "conv3x3", "conv3x3", "output"],
}
DISCONNECTED = {"matrix": [[0, 1, 0], [0, 0, 0], [0, 0, 0]], "ops": ["input", "conv3x3", "output"]}
INPUT_NOT_FIRST = {"matrix": [[0, 1, 0], [0, 0, 1], [0, 0, 0]], "ops": ["conv3x3", "input", "output"]}
OUTPUT_IN_MIDDLE = {"matrix": [[0, 1, 1], [0, 0, 1], [0, 0, 0]], "ops": ["input", "output", "output"]}


# --- helpers -----------------------------------------------------------------------------------


def make_runner() -> CliRunner:
    """A CliRunner whose result has stdout and stderr apart (click 8.2+ always does)."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        return CliRunner()


def invoke(args: Sequence[str], stdin: str | None = None) -> Result:
    """Run ``nbcompile ARGS`` in process."""
    return make_runner().invoke(main, list(args), input=stdin)


def dumps(spec: Any) -> str:
    return json.dumps(spec)


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


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit code 2 and exactly one ``nbcompile: error:`` line on stderr holding every fragment."""
    stderr = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.stdout, stderr, result.exception)
    assert "Traceback" not in stderr and "Traceback" not in result.stdout
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("nbcompile: error: "), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert result.stdout == "", result.stdout
    return line


def files_in(directory: Path) -> list[str]:
    """Names in ``directory`` (hidden ones included); [] when it does not exist."""
    return sorted(os.listdir(directory)) if directory.exists() else []


def assert_no_temp_files(directory: Path) -> None:
    leftovers = [n for n in files_in(directory) if n.startswith(".") or n.endswith(".tmp")]
    assert leftovers == [], leftovers


def compile_ok(args: Sequence[str], out: Path, stdin: str | None = None) -> list[Path]:
    """Run ``compile ARGS -o OUT``, expect success; return the printed paths (which must exist)."""
    result = invoke(["compile", *args, "-o", str(out)], stdin)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert result.stderr == ""
    paths = [Path(line) for line in result.stdout.splitlines()]
    assert paths and all(p.is_file() and p.parent == out for p in paths), paths
    assert_no_temp_files(out)
    return paths


# --- compile: bad input ------------------------------------------------------------------------


@dataclass(frozen=True)
class BadCase:
    """A bad ``compile`` input: the spec file's content (None: no file), expected fragments, options.

    ``{path}`` in a fragment stands for the spec file's path; ``extra_files`` are good spec files
    passed before it.
    """

    content: str | bytes | None
    fragments: tuple[str, ...]
    args: tuple[str, ...] = ()
    name: str = "spec.json"
    extra_files: dict[str, Any] = field(default_factory=dict)


BAD_CASES: dict[str, BadCase] = {
    "non_square_matrix": BadCase(
        dumps({"matrix": [[0, 1], [0, 0, 1]], "ops": ["input", "output"]}),
        ("{path}: matrix must be square", "row 1 has 3 entries"),
    ),
    "ops_length_mismatch": BadCase(
        dumps({"matrix": [[0, 1], [0, 0]], "ops": ["input", "conv3x3", "output"]}),
        ("{path}: ops has 3 entries but the matrix has 2 vertices",),
    ),
    "below_diagonal": BadCase(dumps(BELOW_DIAGONAL), ("{path}: matrix[4][1] = 1", "below the diagonal")),
    "on_diagonal": BadCase(
        dumps({"matrix": [[0, 1, 0], [0, 1, 1], [0, 0, 0]], "ops": ["input", "conv3x3", "output"]}),
        ("{path}: matrix[1][1] = 1", "on the diagonal"),
    ),
    "entry_two": BadCase(
        dumps({"matrix": [[0, 2], [0, 0]], "ops": ["input", "output"]}),
        ("{path}: matrix[0][1] = 2 is not 0 or 1",),
    ),
    "entry_string": BadCase(
        dumps({"matrix": [[0, "1"], [0, 0]], "ops": ["input", "output"]}),
        ("{path}: matrix[0][1] = '1' is not 0 or 1",),
    ),
    "unknown_op": BadCase(
        dumps({"matrix": [[0, 1, 0], [0, 0, 1], [0, 0, 0]], "ops": ["input", "conv5x5", "output"]}),
        ("{path}: ops[1] = 'conv5x5'", "not a NAS-Bench-101 op"),
    ),
    "input_not_first": BadCase(dumps(INPUT_NOT_FIRST), ("{path}: ops[0]", "the first vertex must be 'input'")),
    "output_in_middle": BadCase(dumps(OUTPUT_IN_MIDDLE), ("{path}: ops[1] = 'output'", "only the last 'output'")),
    "eight_vertices": BadCase(dumps(chain(8)), ("{path}: 8 vertices after pruning", "at most 7")),
    "ten_edges": BadCase(dumps(TEN_EDGES), ("{path}: 10 edges after pruning", "at most 9")),
    "disconnected": BadCase(
        dumps(DISCONNECTED), ("{path}: the output (vertex 2) is not reachable from the input (vertex 0)",)
    ),
    "missing_keys": BadCase(
        dumps({"matrix": [[0, 1], [0, 0]]}), ("{path}:", "needs the keys 'matrix' and 'ops'", "it has 'matrix'")
    ),
    "not_an_object": BadCase("5", ("{path}: expected a JSON object",)),
    "malformed_json": BadCase(
        '{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]', ("{path}: not valid JSON", "line 1")
    ),
    "empty_file": BadCase("", ("{path}: no spec: the input is empty",)),
    "blank_file": BadCase("  \n\n", ("{path}: no spec: the input is empty",)),
    "empty_array": BadCase("[]", ("{path}: no spec: the JSON array is empty",)),
    "array_second_bad": BadCase(dumps([TWO, BELOW_DIAGONAL]), ("{path}[1]: matrix[4][1] = 1", "below the diagonal")),
    "missing_file": BadCase(None, ("{path}: no such file",)),
    "not_utf8": BadCase(b"\xff\xfe{\x00", ("{path}: not a UTF-8 text file",)),
    "jsonl_line3_bad_matrix": BadCase(
        jsonl(TWO, json.loads(INCEPTION.read_text()), BELOW_DIAGONAL),
        ("{path}:3: matrix[4][1] = 1", "below the diagonal"),
        name="specs.jsonl",
    ),
    "jsonl_line3_bad_json": BadCase(
        jsonl(TWO, json.loads(INCEPTION.read_text()), '{"matrix": [[0, 1]'),
        ("{path}:3: not valid JSON",),
        name="specs.jsonl",
    ),
    "jsonl_line3_out_of_domain": BadCase(
        jsonl(TWO, json.loads(INCEPTION.read_text()), chain(8)),
        ("{path}:3: 8 vertices after pruning",),
        name="specs.jsonl",
    ),
    "jsonl_line_numbers_count_blank_lines": BadCase(
        jsonl(TWO, "", BELOW_DIAGONAL), ("{path}:3: matrix[4][1] = 1",), name="specs.jsonl"
    ),
    "second_file_bad": BadCase(
        dumps(BELOW_DIAGONAL),
        ("{path}: matrix[4][1] = 1",),
        extra_files={"good.json": TWO},
    ),
    "name_with_two_specs": BadCase(
        dumps([TWO, json.loads(INCEPTION.read_text())]),
        ("--name needs exactly one spec, got 2",),
        args=("--name", "x"),
    ),
    "name_keyword": BadCase(
        dumps(TWO), ("--name 'class' is not a valid Python module name",), args=("--name", "class")
    ),
    "name_leading_digit": BadCase(
        dumps(TWO), ("--name '1abc' is not a valid Python module name",), args=("--name", "1abc")
    ),
    "name_with_dash": BadCase(
        dumps(TWO), ("--name 'my-net' is not a valid Python module name",), args=("--name", "my-net")
    ),
    "stem_channels_zero": BadCase(dumps(TWO), ("--stem-channels = 0 is out of range",), args=("--stem-channels", "0")),
    "num_stacks_too_big": BadCase(dumps(TWO), ("--num-stacks = 7 is out of range 1..6",), args=("--num-stacks", "7")),
    "too_few_channels": BadCase(
        dumps(THREE_FEEDERS),
        ("{path}: 2 output channels cannot be split among the 3 vertices that feed the output",),
        args=("--stem-channels", "2"),
    ),
}


@pytest.mark.parametrize("case", BAD_CASES.values(), ids=BAD_CASES.keys())
def test_compile_rejects_bad_input_with_one_line_and_writes_nothing(case: BadCase, tmp_path: Path) -> None:
    """Every bad input: exit 2, one ``nbcompile: error:`` line naming problem and place, no file."""
    path = tmp_path / case.name
    if case.content is not None:
        write_spec(tmp_path, case.content, case.name)
    for extra_name, extra in case.extra_files.items():
        write_spec(tmp_path, extra, extra_name)
    spec_args = [str(tmp_path / extra_name) for extra_name in case.extra_files] + [str(path)]
    out = tmp_path / "out"
    result = invoke(["compile", *spec_args, "-o", str(out), *case.args])
    assert_one_line_error(result, *(f.format(path=path) for f in case.fragments))
    assert files_in(out) == []


def test_compile_rejects_bad_stdin(tmp_path: Path) -> None:
    """A bad spec on stdin is located as ``<stdin>``."""
    out = tmp_path / "out"
    result = invoke(["compile", "-", "-o", str(out)], stdin=dumps(BELOW_DIAGONAL))
    assert_one_line_error(result, "<stdin>: matrix[4][1] = 1", "below the diagonal")
    assert files_in(out) == []
    result = invoke(["compile", "-", "-o", str(out)], stdin="")
    assert_one_line_error(result, "<stdin>: no spec: the input is empty")


def test_compile_bad_input_leaves_existing_out_dir_untouched(tmp_path: Path) -> None:
    """A failing multi-spec run into an existing folder adds nothing and changes nothing."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    spec = write_spec(tmp_path, jsonl(TWO, json.loads(PER_STACK.read_text()), DISCONNECTED), "s.jsonl")
    assert_one_line_error(invoke(["compile", str(spec), "-o", str(out)]), f"{spec}:3:")
    assert files_in(out) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "keep"


def test_compile_deeply_nested_json_is_a_one_line_error(tmp_path: Path) -> None:
    """Even pathological JSON is bad input: exit 2 and one line, not a RecursionError."""
    spec = write_spec(tmp_path, "[" * 5000 + "]" * 5000)
    assert_one_line_error(
        invoke(["compile", str(spec), "-o", str(tmp_path / "out")]), f"{spec}: not valid JSON (nested too deeply)"
    )


# --- compile: happy paths ----------------------------------------------------------------------


def test_compile_one_spec_writes_one_file_and_prints_its_path(tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = compile_ok([str(INCEPTION)], out)
    assert paths == [out / INCEPTION_FILE]
    assert files_in(out) == [INCEPTION_FILE]
    source = paths[0].read_text()
    assert f'MODULE_HASH = "{INCEPTION_HASH}"' in source
    assert "TRAINABLE_PARAMETERS = 2694282" in source


def test_compile_creates_missing_nested_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert compile_ok([str(TWO_VERTEX)], out) == [out / "nb101_043721b9c7fe.py"]


def test_compile_json_lines_writes_every_spec_in_order(tmp_path: Path) -> None:
    specs = [json.loads(p.read_text()) for p in (TWO_VERTEX, INCEPTION, PER_STACK)]
    spec = write_spec(tmp_path, jsonl(*specs), "specs.jsonl")
    out = tmp_path / "out"
    names = [p.name for p in compile_ok([str(spec)], out)]
    assert names == ["nb101_043721b9c7fe.py", INCEPTION_FILE, "nb101_78e264120b42.py"]
    assert files_in(out) == sorted(names)


def test_compile_json_array_and_several_spec_arguments(tmp_path: Path) -> None:
    array = write_spec(tmp_path, [json.loads(TWO_VERTEX.read_text()), RELABELED], "array.json")
    out = tmp_path / "out"
    names = [p.name for p in compile_ok([str(array), str(INCEPTION)], out)]
    assert names == ["nb101_043721b9c7fe.py", "nb101_78e264120b42_083f1f15.py", INCEPTION_FILE]


def test_compile_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = compile_ok(["-"], out, stdin=INCEPTION.read_text())
    assert [p.name for p in paths] == [INCEPTION_FILE]
    assert paths[0].read_bytes() == compile_ok([str(INCEPTION)], tmp_path / "other")[0].read_bytes()


def test_compile_accepts_query_api_keys(tmp_path: Path) -> None:
    """``module_adjacency``/``module_operations`` build the same file as ``matrix``/``ops``."""
    spec = json.loads(INCEPTION.read_text())
    alias = write_spec(tmp_path, {"module_adjacency": spec["matrix"], "module_operations": spec["ops"]})
    assert [p.name for p in compile_ok([str(alias)], tmp_path / "out")] == [INCEPTION_FILE]


def test_compile_name_option(tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = compile_ok([str(TWO_VERTEX), "--name", "mynet"], out)
    assert paths == [out / "mynet.py"]
    assert files_in(out) == ["mynet.py"]
    assert '".", name="mynet")' in paths[0].read_text()  # in the regenerate command


def test_compile_canonical_changes_name_of_non_canonical_spec(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, RELABELED)
    as_given = compile_ok([str(spec)], tmp_path / "a")[0].name
    canonical = compile_ok([str(spec), "--canonical"], tmp_path / "b")[0].name
    assert as_given == "nb101_78e264120b42_083f1f15.py"
    assert canonical == "nb101_78e264120b42.py"
    # the canonical build of the relabeled cell is the network of the canonical spec itself
    assert compile_ok([str(PER_STACK)], tmp_path / "c")[0].name == canonical


def test_compile_canonical_keeps_name_of_canonical_spec(tmp_path: Path) -> None:
    plain = compile_ok([str(PER_STACK)], tmp_path / "a")[0].name
    assert compile_ok([str(PER_STACK), "--canonical"], tmp_path / "b")[0].name == plain


def test_compile_config_flags_change_name_suffix(tmp_path: Path) -> None:
    default = compile_ok([str(TWO_VERTEX)], tmp_path / "a")[0].stem
    small = compile_ok([str(TWO_VERTEX), "--stem-channels", "16", "--num-stacks", "1"], tmp_path / "b")[0].stem
    labels = compile_ok([str(TWO_VERTEX), "--num-labels", "100"], tmp_path / "c")[0].stem
    assert default == "nb101_043721b9c7fe"
    for name in (small, labels):
        assert name.startswith(default + "_") and len(name) == len(default) + 9, name
        int(name[-8:], 16)  # an 8-hex-digit suffix
    assert small != labels
    text = (tmp_path / "b" / f"{small}.py").read_text()
    assert '".", stem_channels=16, num_stacks=1)' in text  # in the regenerate command


def test_compile_is_deterministic(tmp_path: Path) -> None:
    """The same spec compiled twice (even over an existing file) gives byte-identical files."""
    first = compile_ok([str(INCEPTION)], tmp_path / "a")[0].read_bytes()
    second = compile_ok([str(INCEPTION)], tmp_path / "b")[0].read_bytes()
    again = compile_ok([str(INCEPTION)], tmp_path / "a")[0].read_bytes()
    assert first == second == again
    assert files_in(tmp_path / "a") == [INCEPTION_FILE]


def test_compile_duplicate_specs_write_one_file(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, jsonl(TWO, TWO), "dup.jsonl")
    out = tmp_path / "out"
    assert [p.name for p in compile_ok([str(spec)], out)] == ["nb101_043721b9c7fe.py"]
    assert files_in(out) == ["nb101_043721b9c7fe.py"]


# --- compile: atomic writes --------------------------------------------------------------------


def test_failed_replace_keeps_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash at the final rename leaves the previous target intact and no temporary file."""
    out = tmp_path / "out"
    out.mkdir()
    target = out / INCEPTION_FILE
    target.write_text("previous content\n")

    def broken_replace(src: str, dst: str) -> None:
        assert Path(src).name.startswith(".") and Path(src).exists()  # the temp file was written
        raise OSError("simulated crash in os.replace")

    monkeypatch.setattr("nbcompile.fileio.os.replace", broken_replace)
    result = invoke(["compile", str(INCEPTION), "-o", str(out)])
    assert_one_line_error(result, "simulated crash in os.replace")
    assert target.read_text() == "previous content\n"
    assert files_in(out) == [INCEPTION_FILE]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["OSError", "KeyboardInterrupt"])
def test_crash_mid_write_leaves_no_partial_file(
    error: BaseException, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash after half of the source is written leaves neither a partial target nor a temp."""
    import nbcompile.fileio as files

    real_fdopen = files.os.fdopen

    class HalfWriter:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._handle = real_fdopen(*args, **kwargs)

        def __enter__(self) -> HalfWriter:
            return self

        def __exit__(self, *exc: object) -> None:
            self._handle.close()

        def write(self, text: str) -> int:
            self._handle.write(text[: len(text) // 2])
            self._handle.flush()
            raise error

    monkeypatch.setattr("nbcompile.fileio.os.fdopen", HalfWriter)
    out = tmp_path / "out"
    out.mkdir()
    (out / "nb101_043721b9c7fe.py").write_text("old\n")
    spec = write_spec(tmp_path, jsonl(TWO, json.loads(INCEPTION.read_text())), "s.jsonl")
    result = invoke(["compile", str(spec), "-o", str(out)])
    if isinstance(error, OSError):
        assert_one_line_error(result, "disk full")
    else:
        assert result.exit_code != 0
    assert files_in(out) == ["nb101_043721b9c7fe.py"]
    assert (out / "nb101_043721b9c7fe.py").read_text() == "old\n"


# --- info --------------------------------------------------------------------------------------


def info_json(*args: str, expect_exit: int = 0) -> dict[str, Any]:
    """Run ``info ARGS --json``; return the parsed report."""
    result = invoke(["info", *args, "--json"])
    assert result.exit_code == expect_exit, (result.stdout, result.stderr, result.exception)
    assert result.stderr == ""
    return json.loads(result.stdout)


def test_info_json_inception() -> None:
    info = info_json(str(INCEPTION))
    assert info["valid"] is True
    assert info["module_hash"] == INCEPTION_HASH
    assert info["trainable_parameters"] == 2694282
    assert info["flops"] == 804005888
    assert info["vertex_channels"]["128->128"] == [128, 32, 32, 32, 32, 32, 128]
    assert info["is_canonical"] is False
    assert info["module_name"] == INCEPTION_FILE.removesuffix(".py")
    assert info["pruned_spec"]["ops"][0] == "input"
    assert {"canonical_spec", "same_network_as_canonical"} <= info.keys()


def test_info_text_inception() -> None:
    result = invoke(["info", str(INCEPTION)])
    assert result.exit_code == 0 and result.stderr == ""
    for line in (
        "valid: yes",
        f"module_hash: {INCEPTION_HASH}",
        "128->128: [128, 32, 32, 32, 32, 32, 128]",
        "trainable_parameters: 2,694,282",
        "flops: 804,005,888",
        f"module_name: {INCEPTION_FILE.removesuffix('.py')}",
    ):
        assert line in result.stdout, line


def test_info_json_per_stack_truncation() -> None:
    info = info_json(str(PER_STACK))
    assert info["module_hash"] == PER_STACK_HASH
    assert info["trainable_parameters"] == 3060912
    assert info["vertex_channels"] == PER_STACK_CHANNELS
    assert info["is_canonical"] is True
    assert info["same_network_as_canonical"] is True


def test_info_json_relabeled_cell(tmp_path: Path) -> None:
    """A relabeling keeps the hash but builds a different network (channels follow labels)."""
    spec = str(write_spec(tmp_path, RELABELED))
    info = info_json(spec)
    assert info["module_hash"] == PER_STACK_HASH
    assert info["is_canonical"] is False
    assert info["same_network_as_canonical"] is False
    assert info["trainable_parameters"] == 3065016
    assert info["canonical_trainable_parameters"] == 3060912
    canonical = info_json(spec, "--canonical")
    assert canonical["trainable_parameters"] == 3060912
    assert canonical["same_network_as_canonical"] is True
    assert canonical["module_name"] == "nb101_78e264120b42"


def test_info_text_relabeled_cell_notes_the_canonical_network(tmp_path: Path) -> None:
    result = invoke(["info", str(write_spec(tmp_path, RELABELED))])
    assert result.exit_code == 0
    assert "canonical: no" in result.stdout
    assert "3,060,912" in result.stdout and "the canonical option" in result.stdout
    assert "trainable_parameters: 3,065,016" in result.stdout


def test_info_two_vertex() -> None:
    assert info_json(str(TWO_VERTEX))["trainable_parameters"] == 882570


def test_info_config_flags() -> None:
    info = info_json(str(TWO_VERTEX), "--stem-channels", "16", "--num-stacks", "1")
    assert info["config"]["stem_channels"] == 16
    assert list(info["vertex_channels"]) == ["16->16"]


OUT_OF_DOMAIN = {
    "disconnected": (DISCONNECTED, "not reachable from the input"),
    "eight_vertices": (chain(8), "8 vertices after pruning"),
    "ten_edges": (TEN_EDGES, "10 edges after pruning"),
    "input_not_first": (INPUT_NOT_FIRST, "the first vertex must be 'input'"),
    "output_in_middle": (OUTPUT_IN_MIDDLE, "only the last 'output'"),
}


@pytest.mark.parametrize("spec, reason", OUT_OF_DOMAIN.values(), ids=OUT_OF_DOMAIN.keys())
def test_info_out_of_domain_exits_1(spec: dict[str, Any], reason: str, tmp_path: Path) -> None:
    """A well-formed cell outside the space: a report with valid false and a reason, exit 1."""
    path = str(write_spec(tmp_path, spec))
    info = info_json(path, expect_exit=1)
    assert info["valid"] is False
    assert reason in info["reason"]
    assert "module_hash" not in info
    text = invoke(["info", path])
    assert text.exit_code == 1 and text.stderr == ""
    assert f"valid: no: {info['reason']}" in text.stdout


@pytest.mark.parametrize(
    "content, args, fragment",
    [
        (dumps(BELOW_DIAGONAL), (), "{path}: matrix[4][1] = 1 is below the diagonal"),
        ('{"matrix": [[0, 1]', (), "{path}: not valid JSON"),
        ("", (), "{path}: no spec: the input is empty"),
        (dumps([TWO, TWO]), (), "{path}: info takes one spec, the input holds 2"),
        (dumps(THREE_FEEDERS), ("--stem-channels", "2"), "{path}: 2 output channels cannot be split"),
        (dumps(TWO), ("--stem-channels", "0"), "--stem-channels = 0 is out of range"),
    ],
    ids=["below_diagonal", "malformed_json", "empty", "two_specs", "too_few_channels", "stem_zero"],
)
def test_info_malformed_input_exits_2(content: str, args: tuple[str, ...], fragment: str, tmp_path: Path) -> None:
    path = write_spec(tmp_path, content)
    for json_flag in ([], ["--json"]):
        result = invoke(["info", str(path), *args, *json_flag])
        assert_one_line_error(result, fragment.format(path=path))


def test_info_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    assert_one_line_error(invoke(["info", str(missing)]), f"{missing}: no such file")


def test_info_stdin() -> None:
    result = invoke(["info", "-", "--json"], stdin=INCEPTION.read_text())
    assert result.exit_code == 0
    assert json.loads(result.stdout)["module_hash"] == INCEPTION_HASH


# --- --version, --help -------------------------------------------------------------------------


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


# --- a real process ----------------------------------------------------------------------------


def run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run the CLI of this source tree in a fresh Python process."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", "from nbcompile.cli import main; main()", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_subprocess_compile_and_info(tmp_path: Path) -> None:
    out = tmp_path / "out"
    compiled = run_cli("compile", "examples/inception.json", "-o", str(out))
    assert compiled.returncode == 0, compiled.stderr
    assert compiled.stdout.splitlines() == [str(out / INCEPTION_FILE)]
    source = (out / INCEPTION_FILE).read_text()
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


# --- click's own usage errors are one line too --------------------------------------------------


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
    spec = write_spec(tmp_path, dumps(TWO))
    result = invoke([arg.replace("{spec}", str(spec)) for arg in args])
    line = assert_one_line_error(result, fragment)
    assert "--help'" in line


# --- the group: commands loaded lazily, bad input handled for every command ---------------------


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code`` (its stdout is discarded)."""
    probe = f"import sys\n{code}\nsys.stderr.write('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
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
        env={**os.environ, "PYTHONPATH": str(REPO)},
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
        env={**os.environ, "PYTHONPATH": str(REPO)},
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
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None and process.stderr.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143
    assert "Traceback" not in process.stderr.read()
