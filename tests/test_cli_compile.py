"""``nbcompile compile``: bad input, the files written and their names, and atomic writes.

Bad input must give exit code 2 and exactly one ``nbcompile: error: ...`` line on stderr (no
traceback), and must leave nothing behind in the output folder.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_runner import assert_no_temp_files, assert_one_line_error, files_in, invoke, jsonl, write_spec
from example_cells import (
    BELOW_DIAGONAL,
    DISCONNECTED,
    INCEPTION,
    INCEPTION_HASH,
    INCEPTION_JSON,
    INCEPTION_MODULE_NAME,
    INPUT_NOT_FIRST,
    OUTPUT_IN_MIDDLE,
    PER_STACK_JSON,
    RELABELED,
    TEN_EDGES,
    THREE_FEEDERS,
    TWO_VERTEX,
    TWO_VERTEX_JSON,
    chain,
)

INCEPTION_FILE = f"{INCEPTION_MODULE_NAME}.py"


def compile_ok(args: Sequence[str], out: Path, stdin: str | None = None) -> list[Path]:
    """Run ``compile ARGS -o OUT``, expect success; return the printed paths (which must exist)."""
    result = invoke(["compile", *args, "-o", str(out)], stdin)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    assert result.stderr == ""
    paths = [Path(line) for line in result.stdout.splitlines()]
    assert paths and all(p.is_file() and p.parent == out for p in paths), paths
    assert_no_temp_files(out)
    return paths


# --- bad input ------------------------------------------------------------------------------------


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
        json.dumps({"matrix": [[0, 1], [0, 0, 1]], "ops": ["input", "output"]}),
        ("{path}: matrix must be square", "row 1 has 3 entries"),
    ),
    "ops_length_mismatch": BadCase(
        json.dumps({"matrix": [[0, 1], [0, 0]], "ops": ["input", "conv3x3", "output"]}),
        ("{path}: ops has 3 entries but the matrix has 2 vertices",),
    ),
    "below_diagonal": BadCase(json.dumps(BELOW_DIAGONAL), ("{path}: matrix[4][1] = 1", "below the diagonal")),
    "on_diagonal": BadCase(
        json.dumps({"matrix": [[0, 1, 0], [0, 1, 1], [0, 0, 0]], "ops": ["input", "conv3x3", "output"]}),
        ("{path}: matrix[1][1] = 1", "on the diagonal"),
    ),
    "entry_two": BadCase(
        json.dumps({"matrix": [[0, 2], [0, 0]], "ops": ["input", "output"]}),
        ("{path}: matrix[0][1] = 2 is not 0 or 1",),
    ),
    "entry_string": BadCase(
        json.dumps({"matrix": [[0, "1"], [0, 0]], "ops": ["input", "output"]}),
        ("{path}: matrix[0][1] = '1' is not 0 or 1",),
    ),
    "unknown_op": BadCase(
        json.dumps({"matrix": [[0, 1, 0], [0, 0, 1], [0, 0, 0]], "ops": ["input", "conv5x5", "output"]}),
        ("{path}: ops[1] = 'conv5x5'", "not a NAS-Bench-101 op"),
    ),
    "input_not_first": BadCase(json.dumps(INPUT_NOT_FIRST), ("{path}: ops[0]", "the first vertex must be 'input'")),
    "output_in_middle": BadCase(json.dumps(OUTPUT_IN_MIDDLE), ("{path}: ops[1] = 'output'", "only the last 'output'")),
    "eight_vertices": BadCase(json.dumps(chain(8)), ("{path}: 8 vertices after pruning", "at most 7")),
    "ten_edges": BadCase(json.dumps(TEN_EDGES), ("{path}: 10 edges after pruning", "at most 9")),
    "disconnected": BadCase(
        json.dumps(DISCONNECTED), ("{path}: the output (vertex 2) is not reachable from the input (vertex 0)",)
    ),
    "missing_keys": BadCase(
        json.dumps({"matrix": [[0, 1], [0, 0]]}), ("{path}:", "needs the keys 'matrix' and 'ops'", "it has 'matrix'")
    ),
    "not_an_object": BadCase("5", ("{path}: expected a JSON object",)),
    "malformed_json": BadCase(
        '{"matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]', ("{path}: not valid JSON", "line 1")
    ),
    "empty_file": BadCase("", ("{path}: no spec: the input is empty",)),
    "blank_file": BadCase("  \n\n", ("{path}: no spec: the input is empty",)),
    "empty_array": BadCase("[]", ("{path}: no spec: the JSON array is empty",)),
    "array_second_bad": BadCase(
        json.dumps([TWO_VERTEX, BELOW_DIAGONAL]), ("{path}[1]: matrix[4][1] = 1", "below the diagonal")
    ),
    "missing_file": BadCase(None, ("{path}: no such file",)),
    "not_utf8": BadCase(b"\xff\xfe{\x00", ("{path}: not a UTF-8 text file",)),
    "jsonl_line3_bad_matrix": BadCase(
        jsonl(TWO_VERTEX, INCEPTION, BELOW_DIAGONAL),
        ("{path}:3: matrix[4][1] = 1", "below the diagonal"),
        name="specs.jsonl",
    ),
    "jsonl_line3_bad_json": BadCase(
        jsonl(TWO_VERTEX, INCEPTION, '{"matrix": [[0, 1]'),
        ("{path}:3: not valid JSON",),
        name="specs.jsonl",
    ),
    "jsonl_line3_out_of_domain": BadCase(
        jsonl(TWO_VERTEX, INCEPTION, chain(8)),
        ("{path}:3: 8 vertices after pruning",),
        name="specs.jsonl",
    ),
    "jsonl_line_numbers_count_blank_lines": BadCase(
        jsonl(TWO_VERTEX, "", BELOW_DIAGONAL), ("{path}:3: matrix[4][1] = 1",), name="specs.jsonl"
    ),
    "second_file_bad": BadCase(
        json.dumps(BELOW_DIAGONAL),
        ("{path}: matrix[4][1] = 1",),
        extra_files={"good.json": TWO_VERTEX},
    ),
    "name_with_two_specs": BadCase(
        json.dumps([TWO_VERTEX, INCEPTION]),
        ("--name needs exactly one spec, got 2",),
        args=("--name", "x"),
    ),
    "name_keyword": BadCase(
        json.dumps(TWO_VERTEX), ("--name 'class' is not a valid Python module name",), args=("--name", "class")
    ),
    "name_leading_digit": BadCase(
        json.dumps(TWO_VERTEX), ("--name '1abc' is not a valid Python module name",), args=("--name", "1abc")
    ),
    "name_with_dash": BadCase(
        json.dumps(TWO_VERTEX), ("--name 'my-net' is not a valid Python module name",), args=("--name", "my-net")
    ),
    "stem_channels_zero": BadCase(
        json.dumps(TWO_VERTEX), ("--stem-channels = 0 is out of range",), args=("--stem-channels", "0")
    ),
    "num_stacks_too_big": BadCase(
        json.dumps(TWO_VERTEX), ("--num-stacks = 7 is out of range 1..6",), args=("--num-stacks", "7")
    ),
    "too_few_channels": BadCase(
        json.dumps(THREE_FEEDERS),
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
    result = invoke(["compile", "-", "-o", str(out)], stdin=json.dumps(BELOW_DIAGONAL))
    assert_one_line_error(result, "<stdin>: matrix[4][1] = 1", "below the diagonal")
    assert files_in(out) == []
    result = invoke(["compile", "-", "-o", str(out)], stdin="")
    assert_one_line_error(result, "<stdin>: no spec: the input is empty")


def test_compile_bad_input_leaves_existing_out_dir_untouched(tmp_path: Path) -> None:
    """A failing multi-spec run into an existing folder adds nothing and changes nothing."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    spec = write_spec(tmp_path, jsonl(TWO_VERTEX, json.loads(PER_STACK_JSON.read_text()), DISCONNECTED), "s.jsonl")
    assert_one_line_error(invoke(["compile", str(spec), "-o", str(out)]), f"{spec}:3:")
    assert files_in(out) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "keep"


def test_compile_deeply_nested_json_is_a_one_line_error(tmp_path: Path) -> None:
    """Even pathological JSON is bad input: exit 2 and one line, not a RecursionError."""
    spec = write_spec(tmp_path, "[" * 5000 + "]" * 5000)
    assert_one_line_error(
        invoke(["compile", str(spec), "-o", str(tmp_path / "out")]), f"{spec}: not valid JSON (nested too deeply)"
    )


def test_compile_refuses_unreadable_spec_files(cells_npz, tmp_path) -> None:
    huge = tmp_path / "huge.json"
    huge.write_text('{"matrix": [[0, ' + "1" * 5000 + '], [0, 0]], "ops": ["input", "output"]}')
    lines = tmp_path / "huge.jsonl"
    lines.write_text(json.dumps(INCEPTION) + "\n" + '{"matrix": ' + "7" * 5000 + "}\n")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as handle:
        np.save(handle, np.zeros(3))
    assert zipfile.is_zipfile(cells_npz)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(cells_npz.read_bytes()[:-40])
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
        assert_one_line_error(invoke(["compile", str(path), "-o", str(out)]), str(path.name), fragment)
    assert not out.exists()


# --- happy paths ----------------------------------------------------------------------------------


def test_compile_one_spec_writes_one_file_and_prints_its_path(tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = compile_ok([str(INCEPTION_JSON)], out)
    assert paths == [out / INCEPTION_FILE]
    assert files_in(out) == [INCEPTION_FILE]
    source = paths[0].read_text()
    assert f'MODULE_HASH = "{INCEPTION_HASH}"' in source
    assert "TRAINABLE_PARAMETERS = 2694282" in source


def test_compile_creates_missing_nested_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert compile_ok([str(TWO_VERTEX_JSON)], out) == [out / "nb101_043721b9c7fe.py"]


def test_compile_json_lines_writes_every_spec_in_order(tmp_path: Path) -> None:
    specs = [json.loads(p.read_text()) for p in (TWO_VERTEX_JSON, INCEPTION_JSON, PER_STACK_JSON)]
    spec = write_spec(tmp_path, jsonl(*specs), "specs.jsonl")
    out = tmp_path / "out"
    names = [p.name for p in compile_ok([str(spec)], out)]
    assert names == ["nb101_043721b9c7fe.py", INCEPTION_FILE, "nb101_78e264120b42.py"]
    assert files_in(out) == sorted(names)


def test_compile_json_array_and_several_spec_arguments(tmp_path: Path) -> None:
    array = write_spec(tmp_path, [TWO_VERTEX, RELABELED], "array.json")
    out = tmp_path / "out"
    names = [p.name for p in compile_ok([str(array), str(INCEPTION_JSON)], out)]
    assert names == ["nb101_043721b9c7fe.py", "nb101_78e264120b42_083f1f15.py", INCEPTION_FILE]


def test_compile_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = compile_ok(["-"], out, stdin=INCEPTION_JSON.read_text())
    assert [p.name for p in paths] == [INCEPTION_FILE]
    assert paths[0].read_bytes() == compile_ok([str(INCEPTION_JSON)], tmp_path / "other")[0].read_bytes()


def test_compile_accepts_query_api_keys(tmp_path: Path) -> None:
    """``module_adjacency``/``module_operations`` build the same file as ``matrix``/``ops``."""
    alias = write_spec(tmp_path, {"module_adjacency": INCEPTION["matrix"], "module_operations": INCEPTION["ops"]})
    assert [p.name for p in compile_ok([str(alias)], tmp_path / "out")] == [INCEPTION_FILE]


def test_compile_name_option(tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = compile_ok([str(TWO_VERTEX_JSON), "--name", "mynet"], out)
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
    assert compile_ok([str(PER_STACK_JSON)], tmp_path / "c")[0].name == canonical


def test_compile_canonical_keeps_name_of_canonical_spec(tmp_path: Path) -> None:
    plain = compile_ok([str(PER_STACK_JSON)], tmp_path / "a")[0].name
    assert compile_ok([str(PER_STACK_JSON), "--canonical"], tmp_path / "b")[0].name == plain


def test_compile_config_flags_change_name_suffix(tmp_path: Path) -> None:
    default = compile_ok([str(TWO_VERTEX_JSON)], tmp_path / "a")[0].stem
    small = compile_ok([str(TWO_VERTEX_JSON), "--stem-channels", "16", "--num-stacks", "1"], tmp_path / "b")[0].stem
    labels = compile_ok([str(TWO_VERTEX_JSON), "--num-labels", "100"], tmp_path / "c")[0].stem
    assert default == "nb101_043721b9c7fe"
    for name in (small, labels):
        assert name.startswith(default + "_") and len(name) == len(default) + 9, name
        int(name[-8:], 16)  # an 8-hex-digit suffix
    assert small != labels
    text = (tmp_path / "b" / f"{small}.py").read_text()
    assert '".", stem_channels=16, num_stacks=1)' in text  # in the regenerate command


def test_compile_is_deterministic(tmp_path: Path) -> None:
    """The same spec compiled twice (even over an existing file) gives byte-identical files."""
    first = compile_ok([str(INCEPTION_JSON)], tmp_path / "a")[0].read_bytes()
    second = compile_ok([str(INCEPTION_JSON)], tmp_path / "b")[0].read_bytes()
    again = compile_ok([str(INCEPTION_JSON)], tmp_path / "a")[0].read_bytes()
    assert first == second == again
    assert files_in(tmp_path / "a") == [INCEPTION_FILE]


def test_compile_duplicate_specs_write_one_file(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, jsonl(TWO_VERTEX, TWO_VERTEX), "dup.jsonl")
    out = tmp_path / "out"
    assert [p.name for p in compile_ok([str(spec)], out)] == ["nb101_043721b9c7fe.py"]
    assert files_in(out) == ["nb101_043721b9c7fe.py"]


# --- atomic writes --------------------------------------------------------------------------------


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
    result = invoke(["compile", str(INCEPTION_JSON), "-o", str(out)])
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
    spec = write_spec(tmp_path, jsonl(TWO_VERTEX, INCEPTION), "s.jsonl")
    result = invoke(["compile", str(spec), "-o", str(out)])
    if isinstance(error, OSError):
        assert_one_line_error(result, "disk full")
    else:
        assert result.exit_code != 0
    assert files_in(out) == ["nb101_043721b9c7fe.py"]
    assert (out / "nb101_043721b9c7fe.py").read_text() == "old\n"
