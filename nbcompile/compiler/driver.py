"""The compiler's front door: spec (+ config) → plan → source → file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbcompile.compiler.config import NetworkConfig
from nbcompile.compiler.lower import lower
from nbcompile.compiler.naming import module_name_for
from nbcompile.compiler.plan import NetworkPlan
from nbcompile.compiler.render import render_plan
from nbcompile.fileio import write_atomic
from nbcompile.space.spec import as_model_spec


@dataclass(frozen=True)
class CompileJob:
    """A planned file: its module name, its plan, and the name to record in its header."""

    module_name: str
    plan: NetworkPlan
    explicit_name: str | None

    def source(self) -> str:
        return render_plan(self.plan, self.explicit_name)

    def write(self, out_dir: str | os.PathLike[str]) -> Path:
        path = Path(out_dir) / f"{self.module_name}.py"
        write_atomic(path, self.source())
        return path

    def package_path(self, out_dir: str | os.PathLike[str], device: str, dtype: str, batch_size: int) -> Path:
        """Where the AOT package of this file goes: beside it, named by what it was built for,
        e.g. ``nb101_0123456789ab.cpu-fp32-b1.pt2`` (built by ``nbcompile.runtime.aot``)."""
        return Path(out_dir) / f"{self.module_name}.{device.replace(':', '')}-{dtype}-b{batch_size}.pt2"


def plan_job(
    spec: Any, *, name: str | None = None, canonical: bool = False, config: NetworkConfig | None = None
) -> CompileJob:
    """Validate and plan one spec; every error is raised here, before anything is written."""
    plan = lower(as_model_spec(spec), config or NetworkConfig(), canonical)
    default_name = module_name_for(plan)
    module_name = default_name if name is None else module_name_for(plan, name)
    return CompileJob(module_name, plan, None if module_name == default_name else module_name)


def generate_source(spec: Any, *, name: str | None = None, canonical: bool = False, **config: Any) -> str:
    """The source of a standalone ``nn.Module`` file for ``spec``.

    ``spec`` is a ModelSpec, a ``{"matrix", "ops"}`` mapping or an object with matrix and ops;
    ``config`` overrides NetworkConfig fields; ``canonical`` builds the dataset's labeling.
    """
    return plan_job(spec, name=name, canonical=canonical, config=NetworkConfig.from_kwargs(**config)).source()


def compile_to_file(
    spec: Any,
    out_dir: str | os.PathLike[str],
    name: str | None = None,
    *,
    canonical: bool = False,
    **config: Any,
) -> Path:
    """Generate the model file for ``spec`` into ``out_dir``; returns its path.

    The file is ``<name>.py``, by default ``nb101_<hash prefix>[_<variant>].py``.
    """
    job = plan_job(spec, name=name, canonical=canonical, config=NetworkConfig.from_kwargs(**config))
    return job.write(out_dir)
