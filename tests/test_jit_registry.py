"""The guard against torch's TorchScript builtin table outliving the functions it names."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch.jit._builtins as jit_builtins

from nbcompile.runtime.jit_registry import keep_registered_builtins_alive

#: Run in a fresh interpreter: registering a throwaway function must not touch this process's table.
_PROBE = textwrap.dedent(
    """
    import gc, sys, weakref
    import torch.jit._builtins as jit_builtins

    def registered_then_dropped():
        def stand_in(x):
            return x
        ref = weakref.ref(stand_in)
        jit_builtins._register_builtin(stand_in, "aten::relu")
        del stand_in
        gc.collect()
        return ref() is not None

    before = registered_then_dropped()
    if "--guard" in sys.argv[1:]:
        import nbcompile.runtime  # installs the guard
    print(before, registered_then_dropped())
    """
)


def test_registered_function_outlives_its_last_reference() -> None:
    """With the guard, a function registered as a builtin stays alive, so its id is never reused
    by another object (which TorchScript would then take for that builtin)."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, "--guard"], capture_output=True, text=True, check=True, timeout=120
    )
    torch_keeps_it, guarded_keeps_it = result.stdout.split()
    assert guarded_keeps_it == "True", f"torch alone keeps it: {torch_keeps_it}"


def test_guard_installs_once() -> None:
    """Installing again does not wrap the wrapper (which would keep each function twice)."""
    keep_registered_builtins_alive()
    installed = jit_builtins._register_builtin
    keep_registered_builtins_alive()
    assert jit_builtins._register_builtin is installed


def test_runtime_import_installs_the_guard() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import torch.jit._builtins as b; import nbcompile.runtime; "
            "print(getattr(b._register_builtin, '_nbcompile_keeps_registered_alive', False))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == "True"
