"""Code generation: render a NetworkPlan through the Jinja template and format it with black."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from nbcompile._version import __version__
from nbcompile.compiler.plan import BN_EPS, BN_MOMENTUM, TRUNCATED_NORMAL_STD, NetworkPlan

if TYPE_CHECKING:
    import black

TEMPLATE = "network.py.jinja"
#: black's line length: code lines longer than this are what the ``auto`` formatter sends to black.
BLACK_LINE_LENGTH = 88


@lru_cache(maxsize=1)
def black_mode() -> black.Mode:
    """black's mode, pinned so that output only changes with black's own style releases. black is
    imported here, where formatting happens: rendering a cell without long lines needs no black."""
    import black

    return black.Mode(target_versions={black.TargetVersion.PY310}, line_length=BLACK_LINE_LENGTH)


def templates_dir() -> Path:
    """The template folder: ``templates/`` at the top of a source checkout (the one copy), which
    the wheel ships as ``nbcompile/compiler/templates``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parents[1] / "templates"):
        if (candidate / TEMPLATE).is_file():
            return candidate
    raise FileNotFoundError(f"nbcompile's templates are missing (looked for {TEMPLATE} near {here})")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


@dataclass(frozen=True)
class Header:
    """Presentation of a plan's facts for the generated file's docstring and constants."""

    version: str
    command: str
    labeling: str
    given: tuple[str, ...]
    built: tuple[str, ...]
    config: str
    config_items: tuple[tuple[str, int], ...]
    channels: tuple[str, ...]
    parameters: str
    flops: str
    original_matrix: tuple[str, ...]
    original_ops: tuple[str, ...]
    matrix: tuple[str, ...]
    ops: tuple[str, ...]
    bn_momentum: str
    bn_eps: str
    truncated_normal_std: str


def _float_literal(value: float) -> str:
    """The shortest Python literal of ``value``, with a short exponent (``1e-5``, not ``1e-05``)."""
    return re.sub(r"e([+-])0+(\d)", r"e\1\2", repr(float(value)))


def _matrix_lines(matrix: tuple[tuple[int, ...], ...], ops: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(" ".join(map(str, row)) + "   " + op for row, op in zip(matrix, ops))


def regenerate_command(plan: NetworkPlan, name: str | None) -> str:
    """A shell command that writes this file again into the current folder. It calls the
    compiler's own Python API (``nbcompile.compile_to_file``, whose keywords are the NetworkConfig
    field names), so that the file names no front end's options."""
    arguments = [json.dumps(plan.spec.to_dict(), separators=(", ", ": ")), '"."']
    if name is not None:
        arguments.append(f"name={json.dumps(name)}")
    if plan.canonical_labeling:
        arguments.append("canonical=True")
    arguments += [f"{field}={value}" for field, value in plan.config.overrides().items()]
    return "python -c " + shlex.quote(f"import nbcompile; nbcompile.compile_to_file({', '.join(arguments)})")


def build_header(plan: NetworkPlan, name: str | None = None) -> Header:
    spec, built = plan.spec, plan.built
    labeling = "pruned, canonical NAS-Bench-101 labeling" if plan.canonical_labeling else "pruned"
    return Header(
        version=__version__,
        command=regenerate_command(plan, name),
        labeling=labeling,
        given=_matrix_lines(spec.original_matrix_tuple, spec.original_ops_tuple),
        built=_matrix_lines(built.pruned_matrix, built.pruned_ops),
        config=", ".join(f"{k}={v}" for k, v in plan.config.as_dict().items()),
        config_items=tuple(plan.config.as_dict().items()),
        channels=tuple(f"{pair}: {list(vc)}" for pair, vc in plan.vertex_channels().items()),
        parameters=f"{plan.trainable_parameters:,}",
        flops=f"{plan.flops:,}",
        original_matrix=tuple(repr(list(row)) for row in spec.original_matrix_tuple),
        original_ops=spec.original_ops_tuple,
        matrix=tuple(repr(list(row)) for row in built.pruned_matrix),
        ops=built.pruned_ops,
        bn_momentum=_float_literal(BN_MOMENTUM),
        bn_eps=_float_literal(BN_EPS),
        truncated_normal_std=_float_literal(TRUNCATED_NORMAL_STD),
    )


def render_plan(plan: NetworkPlan, name: str | None = None, *, formatter: str = "auto") -> str:
    """The formatted source of the generated module for ``plan``.

    ``name`` is recorded in the regenerate command when it is not the default name. The
    template emits black-stable code, so ``formatter="auto"`` runs black only when a code line
    is longer than black's limit (a cell with a wide fan-in); ``"black"`` always runs it (the
    result is the same, slower: the tests check that).
    """
    source = _environment().get_template(TEMPLATE).render(plan=plan, header=build_header(plan, name))
    code = source[source.index('"""', 3) + 3 :]  # black leaves long docstring lines alone
    if formatter not in ("auto", "black", "none"):
        raise ValueError(f"formatter must be 'auto', 'black' or 'none', got {formatter!r}")
    if formatter == "black" or (
        formatter == "auto" and any(len(line) > BLACK_LINE_LENGTH for line in code.splitlines())
    ):
        import black

        source = black.format_str(source, mode=black_mode())
    compile(source, f"<nbcompile {plan.module_hash}>", "exec")
    return source
