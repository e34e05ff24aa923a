"""Generated source (nbcompile.compiler.render): deterministic, black-clean, straight-line, with a
header and constants that describe the network, and no way for spec text to reach the code."""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys
from pathlib import Path

import black
import pytest
from example_cells import INCEPTION, INCEPTION_HASH
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import valid_specs

from nbcompile import ConfigError, ModelSpec, NetworkConfig, SpecError, compile_to_file, generate_source
from nbcompile.compiler.lower import lower
from nbcompile.compiler.render import BLACK_LINE_LENGTH, black_mode, render_plan


def test_output_is_deterministic_and_black_clean() -> None:
    first = generate_source(INCEPTION)
    assert generate_source(INCEPTION) == first
    assert black.format_str(first, mode=black_mode()) == first
    assert black_mode().line_length == BLACK_LINE_LENGTH


def test_source_imports_only_torch() -> None:
    tree = ast.parse(generate_source(INCEPTION))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
    assert modules == {"torch"}


def test_forward_is_straight_line() -> None:
    """No loops, branches or adjacency lookups in any forward; no unused layers."""
    source = generate_source(INCEPTION)
    tree = ast.parse(source)
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        forward = next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "forward")
        assert not [n for n in ast.walk(forward) if isinstance(n, (ast.For, ast.While, ast.If, ast.IfExp))]
        init = next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
        assigned = {
            t.attr
            for n in ast.walk(init)
            if isinstance(n, ast.Assign)
            for t in n.targets
            if isinstance(t, ast.Attribute)
        }
        used = {n.attr for n in ast.walk(forward) if isinstance(n, ast.Attribute)}
        assert assigned <= used, f"{cls.name} defines unused layers {assigned - used}"
    code = source.split('"""', 2)[2]  # after the module docstring
    assert "matrix[" not in code and "adjacency" not in code


def test_header_records_spec_hash_config_counts_and_command() -> None:
    source = generate_source(INCEPTION)
    docstring = ast.get_docstring(ast.parse(source))
    assert INCEPTION_HASH in docstring
    assert "Trainable parameters: 2,694,282" in docstring
    assert "FLOPs per 32x32 image: 804,005,888" in docstring
    assert "stem_channels=128, num_stacks=3, cells_per_stack=3, num_labels=10, in_channels=3" in docstring
    assert "nbcompile 0.1.0" in docstring
    assert "python -c 'import nbcompile; nbcompile.compile_to_file(" in docstring
    assert "128->256: [128, 64, 64, 64, 64, 64, 256]" in docstring


def test_regenerate_command_records_non_defaults() -> None:
    source = generate_source(INCEPTION, name="my_net", canonical=True, stem_channels=16, num_stacks=2)
    assert '".", name="my_net", canonical=True, stem_channels=16, num_stacks=2)' in source
    assert "--" not in ast.get_docstring(ast.parse(source))  # no command-line flags: the compiler knows none


def test_the_regenerate_command_writes_the_same_file(tmp_path: Path) -> None:
    path = compile_to_file(INCEPTION, tmp_path / "first", name="my_net", canonical=True, num_labels=7)
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    command = docstring.split("regenerate with:", 1)[1].strip().splitlines()[0]
    program, *arguments = shlex.split(command)
    assert program == "python"
    (tmp_path / "again").mkdir()
    subprocess.run([sys.executable, *arguments], cwd=tmp_path / "again", check=True)
    assert (tmp_path / "again" / "my_net.py").read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def test_constants_describe_the_network() -> None:
    namespace: dict = {}
    exec(compile(generate_source(INCEPTION, canonical=True), "<generated>", "exec"), namespace)
    assert namespace["MODULE_HASH"] == INCEPTION_HASH
    assert namespace["TRAINABLE_PARAMETERS"] == 2_694_282
    assert namespace["SPEC"]["original_matrix"] == INCEPTION["matrix"]
    assert namespace["SPEC"]["ops"][1] == "conv3x3-bn-relu"  # the canonical labeling was built
    assert namespace["CONFIG"]["stem_channels"] == 128


def test_spec_text_cannot_reach_the_source() -> None:
    with pytest.raises(SpecError):
        generate_source({"matrix": [[0, 1], [0, 0]], "ops": ["input", 'output"); import os; (']})
    with pytest.raises(ConfigError):
        generate_source(INCEPTION, name="x; import os")


def test_compile_to_file_writes_an_importable_named_file(tmp_path: Path) -> None:
    path = compile_to_file(INCEPTION, tmp_path / "models", name="inception_net")
    assert path == tmp_path / "models" / "inception_net.py"
    assert path.read_text(encoding="utf-8") == generate_source(INCEPTION, name="inception_net")
    assert [p.name for p in path.parent.iterdir()] == ["inception_net.py"]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    valid_specs(), st.sampled_from([NetworkConfig(), NetworkConfig(stem_channels=5, num_stacks=2, cells_per_stack=1)])
)
def test_template_output_is_black_stable(spec, config) -> None:
    """The fast path (black only for over-long lines) gives exactly black's output."""
    plan = lower(spec, config)
    assert render_plan(plan, formatter="auto") == render_plan(plan, formatter="black")


def test_unknown_formatter_is_rejected() -> None:
    with pytest.raises(ValueError, match="formatter must be"):
        render_plan(lower(ModelSpec.from_dict(INCEPTION)), formatter="ruff")


def test_the_runtime_finds_cells_by_the_compiler_s_class_names() -> None:
    from nbcompile.compiler.naming import is_cell_class_name

    plan = lower(ModelSpec.from_dict(INCEPTION))
    assert plan.cell_bodies and all(is_cell_class_name(body.class_name) for body in plan.cell_bodies)
    assert not any(map(is_cell_class_name, ["Network", "ConvBnRelu", "DynamicCell", "Cell", "Cell3To", "xCell3To4"]))
