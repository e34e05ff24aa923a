"""AOT packages: ``nbcompile compile --aot`` and ``nbcompile.load_package``.

The round trip builds a real AOTInductor package (C++ compilation, ~30 s on 2 cores), so it
carries the ``aot`` marker: deselected by default, run by ``.ci/run`` as ``pytest -m aot``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cli_runner import invoke
from example_cells import REPO

import nbcompile
from nbcompile import ConfigError, NbcompileError
from nbcompile.compiler.driver import plan_job

TINY_FLAGS = ["--stem-channels", "8", "--num-stacks", "1", "--cells-per-stack", "1"]
CELL = {
    "matrix": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
    "ops": ["input", "conv3x3-bn-relu", "maxpool3x3", "output"],
}

#: Run in a fresh process: load the package and the generated file (weights from seed 0, as the
#: CLI made them), compare, and report whether anything was compiled in that process.
FRESH_PROCESS = """
import json, sys, time
started = time.perf_counter()
import torch, nbcompile
from torch._dynamo.utils import compilation_time_metrics, counters
package = nbcompile.load_package(sys.argv[1])
loaded_s = time.perf_counter() - started
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(0)
    model = nbcompile.load_model(sys.argv[2]).eval()
x = torch.randn(package.info.input_shape(), generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    expected = model(x)
actual = package(x)
try:
    package(torch.zeros(1, 3, 32, 32))
    shape_error = None
except nbcompile.NbcompileError as error:
    shape_error = str(error)
print(json.dumps({
    "max_abs_diff": (actual - expected).abs().max().item(),
    "dtype": str(actual.dtype),
    "shape": list(actual.shape),
    "info": package.info.__dict__,
    "compiled": sorted(compilation_time_metrics),
    "inductor_counters": dict(counters["inductor"]),
    "load_s": package.load_s,
    "import_and_load_s": loaded_s,
    "shape_error": shape_error,
}))
"""


def compile_args(tmp_path: Path, *extra: str) -> list[str]:
    spec = tmp_path / "cell.json"
    spec.write_text(json.dumps(CELL))
    return ["compile", str(spec), "-o", str(tmp_path / "out"), *TINY_FLAGS, *extra]


@pytest.mark.aot
def test_package_round_trip_in_a_fresh_process(tmp_path: Path) -> None:
    result = invoke(compile_args(tmp_path, "--aot", "--batch-size", "2"))
    assert result.exit_code == 0, result.output
    source, package = (Path(line) for line in result.stdout.splitlines())
    assert source.suffix == ".py" and package.name == source.stem + ".cpu-fp32-b2.pt2"
    assert sorted(p.name for p in package.parent.iterdir()) == sorted([source.name, package.name])  # no temp files left
    cache = tmp_path / "empty-inductor-cache"
    environment = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(package), str(source)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.splitlines()[-1])
    assert report["max_abs_diff"] < 1e-4, report
    assert report["dtype"] == "torch.float32" and report["shape"] == [2, 10]
    assert report["info"] == {
        "device": "cpu",
        "dtype": "fp32",
        "batch_size": 2,
        "image_size": 32,
        "in_channels": 3,
        "nbcompile_version": nbcompile.__version__,
        "module_hash": plan_job(CELL).plan.module_hash,
    }
    # Nothing was compiled in the loading process: no dynamo frames, no inductor graphs.
    assert "_compile.compile_inner" not in report["compiled"] and not report["inductor_counters"], report
    assert report["shape_error"].endswith("built for input shape [2, 3, 32, 32], got [1, 3, 32, 32]")
    print(
        f"load_package: {report['load_s']:.2f} s; import torch + nbcompile + load: {report['import_and_load_s']:.2f} s"
    )


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--device", "tpu"], "--device must be cpu, cuda or cuda:N, got 'tpu'"),
        (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
        (["--device", "cuda"], "--device cuda: CUDA is not available on this machine"),
    ],
)
def test_bad_package_options_are_one_line_errors_before_any_file(
    tmp_path: Path, flags: list[str], fragment: str
) -> None:
    import torch

    if "cuda" in flags and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = invoke(compile_args(tmp_path, "--aot", *flags))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"nbcompile: error: {fragment}"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_loading_what_is_not_a_package_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no AOT package at"):
        nbcompile.load_package(tmp_path / "missing.pt2")
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(NbcompileError, match=r"junk.pt2: not a loadable AOT package") as caught:
        nbcompile.load_package(junk)
    assert "\n" not in str(caught.value)
    empty = tmp_path / "empty.pt2"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("empty/version", "0\n")
    with pytest.raises(NbcompileError, match=r"empty.pt2: not a loadable AOT package"):
        nbcompile.load_package(empty)


def test_package_path_sits_beside_the_source_and_names_what_it_was_built_for(tmp_path: Path) -> None:
    job = plan_job(CELL, name="tiny_net")
    assert job.package_path(tmp_path, "cuda:1", "bf16", 256) == tmp_path / "tiny_net.cuda1-bf16-b256.pt2"


def test_package_options_are_checked(tmp_path: Path) -> None:
    from nbcompile.runtime.aot import check_package_options

    device, dtype = check_package_options("cpu", "auto", 4)
    assert (str(device), dtype) == ("cpu", "fp32")
    with pytest.raises(ConfigError, match="dtype must be one of auto, fp32, bf16"):
        check_package_options("cpu", "fp8", 1)
