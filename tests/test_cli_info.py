"""``nbcompile info``: the report on a cell, as text and JSON; a cell outside the space exits 1 with
a reason, malformed input exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_runner import assert_one_line_error, invoke, write_spec
from example_cells import (
    BELOW_DIAGONAL,
    DISCONNECTED,
    INCEPTION_HASH,
    INCEPTION_JSON,
    INCEPTION_MODULE_NAME,
    INPUT_NOT_FIRST,
    OUTPUT_IN_MIDDLE,
    PER_STACK_HASH,
    PER_STACK_JSON,
    RELABELED,
    TEN_EDGES,
    THREE_FEEDERS,
    TWO_VERTEX,
    TWO_VERTEX_JSON,
    chain,
)

PER_STACK_CHANNELS = {
    "128->128": [128, 43, 43, 42, 128],
    "128->256": [128, 86, 85, 85, 256],
    "256->256": [256, 86, 85, 85, 256],
    "256->512": [256, 171, 171, 170, 512],
    "512->512": [512, 171, 171, 170, 512],
}


def info_json(*args: str, expect_exit: int = 0) -> dict[str, Any]:
    """Run ``info ARGS --json``; return the parsed report."""
    result = invoke(["info", *args, "--json"])
    assert result.exit_code == expect_exit, (result.stdout, result.stderr, result.exception)
    assert result.stderr == ""
    return json.loads(result.stdout)


def test_info_json_inception() -> None:
    info = info_json(str(INCEPTION_JSON))
    assert info["valid"] is True
    assert info["module_hash"] == INCEPTION_HASH
    assert info["trainable_parameters"] == 2694282
    assert info["flops"] == 804005888
    assert info["vertex_channels"]["128->128"] == [128, 32, 32, 32, 32, 32, 128]
    assert info["is_canonical"] is False
    assert info["module_name"] == INCEPTION_MODULE_NAME
    assert info["pruned_spec"]["ops"][0] == "input"
    assert {"canonical_spec", "same_network_as_canonical"} <= info.keys()


def test_info_text_inception() -> None:
    result = invoke(["info", str(INCEPTION_JSON)])
    assert result.exit_code == 0 and result.stderr == ""
    for line in (
        "valid: yes",
        f"module_hash: {INCEPTION_HASH}",
        "128->128: [128, 32, 32, 32, 32, 32, 128]",
        "trainable_parameters: 2,694,282",
        "flops: 804,005,888",
        f"module_name: {INCEPTION_MODULE_NAME}",
    ):
        assert line in result.stdout, line


def test_info_json_per_stack_truncation() -> None:
    info = info_json(str(PER_STACK_JSON))
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
    assert info_json(str(TWO_VERTEX_JSON))["trainable_parameters"] == 882570


def test_info_config_flags() -> None:
    info = info_json(str(TWO_VERTEX_JSON), "--stem-channels", "16", "--num-stacks", "1")
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
        (json.dumps(BELOW_DIAGONAL), (), "{path}: matrix[4][1] = 1 is below the diagonal"),
        ('{"matrix": [[0, 1]', (), "{path}: not valid JSON"),
        ("", (), "{path}: no spec: the input is empty"),
        (json.dumps([TWO_VERTEX, TWO_VERTEX]), (), "{path}: info takes one spec, the input holds 2"),
        (json.dumps(THREE_FEEDERS), ("--stem-channels", "2"), "{path}: 2 output channels cannot be split"),
        (json.dumps(TWO_VERTEX), ("--stem-channels", "0"), "--stem-channels = 0 is out of range"),
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
    result = invoke(["info", "-", "--json"], stdin=INCEPTION_JSON.read_text())
    assert result.exit_code == 0
    assert json.loads(result.stdout)["module_hash"] == INCEPTION_HASH
