"""Differential test against TensorFlow: networks compiled by nbcompile against the same networks
built in TensorFlow by code nbcompile did not write. The cases (``CASES``): the Inception-like cell
(examples/inception.json) at the default config, in its canonical labeling and as given, and with
ghost BatchNorm (2 slices of the batch); the 7-vertex 9-edge cell and a cell with two pruned
vertices at a small config (2 stacks of 2 cells, stem 16).

The TensorFlow network comes from ``nasbench_keras.build_keras_model`` (PyPI ``nasbench-keras``
0.2.4, a third-party tf.keras port of upstream's ``model_builder.py``), run by tests/tf_network.py
in a subprocess under Keras 2 (``tf-keras``, ``TF_USE_LEGACY_KERAS=1`` in that process only).
TensorFlow gets the cell as given (``canonical=False``: what upstream builds from the same matrix;
nasbench_keras prunes it its own way, a check of nbcompile's pruning) or in the dataset's
canonical labeling as nbcompile built it (``canonical=True``), and the same weights, with random
BatchNorm parameters and moving statistics so that eval mode uses them. Compared, for a batch of
4 CIFAR-sized images:

* the logits in eval mode (moving statistics);
* the logits in train mode (the batch's statistics), upstream's loss (mean softmax cross-entropy
  + 1e-4 · Σ ``tf.nn.l2_loss`` over every trainable variable) and every gradient;
* one step of upstream's optimizer, TF's own ``tf.compat.v1.train.RMSPropOptimizer`` against
  nbcompile's ``TFRMSProp`` (lr 0.2, decay 0.9, momentum 0.9, ε 1.0): the change of every
  trainable variable, and every BatchNorm's moving mean and variance after the step (momentum
  0.997, unbiased batch variance), also as the batch statistics they imply.

With ghost BatchNorm, nbcompile's ``GhostBatchNorm2d`` (statistics of each half of the batch)
against TensorFlow run as upstream's 2 TPU shards ran: each half of the batch through the Keras
model on its own (one ``training=True`` call each, the loss over both under one gradient tape).
Logits, loss, gradients and the step are compared as above. The moving statistics themselves are
not: TensorFlow updates them half by half, nbcompile once with the halves' mean statistics (the
inferred part, see the training guide); compared instead are the batch statistics they imply,
per half on TensorFlow's side (from the moving statistics after each half), averaged over the
halves.

Error measure: for a tensor ``a`` against ``b``, ``max |a − b| / max |b|`` (relative to the
tensor's largest magnitude: logits near zero and gradients of unused channels make element-wise
ratios meaningless; element-wise ratios are printed for information). Tolerances: every quantity
is also computed by nbcompile's model in float64, the reference, and in float32 twice (contiguous
and channels-last: different convolution algorithms). For each kind of quantity (eval logits,
train logits, loss, gradients, steps, moving means, ...) the float32 error level is the largest
error of those two float32 runs against the reference, over the kind's tensors; TensorFlow's
float32 result must lie within ``SLACK`` times that level of the reference, and never needs to be
closer than ``FLOOR`` (a few float32 ulps). This bounds the implementations' difference by float32
rounding, whatever each quantity's conditioning (single gradient tensors of this randomly
initialised network lose up to ~1e-1 of relative accuracy in float32, in PyTorch as in TensorFlow;
the loss and logits keep ~1e-6). Eval logits must moreover meet 1e-5. The gradients and the steps
are also compared as one vector each, a tighter check of the large tensors. And the optimizers
alone: TF's step against ``TFRMSProp``'s from the same gradients (TF's), to float32 rounding.

For the canonical labeling TensorFlow also runs in float64 (``tf.keras.backend.set_floatx``), against
nbcompile's float64 run: logits and every gradient must agree to 1e-9 (measured: 1e-13), free of
float32's ill-conditioning; see ``test_tensorflow_matches_nbcompile_in_float64`` for the rest.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from example_cells import INCEPTION, REPO, SEVEN_VERTEX_NINE_EDGE_JSON
from torch.nn import functional as F

import nbcompile
from nbcompile.compiler.naming import cell_attribute, op_name, projection_name
from nbcompile.train.recipe import (
    BASE_LR,
    EPSILON,
    MOMENTUM,
    RMS_DECAY,
    WEIGHT_DECAY,
    TFRMSProp,
    l2_penalty,
    use_ghost_batch_norm,
)

pytestmark = pytest.mark.tf


@dataclass(frozen=True)
class Case:
    """One network compared: its cell, labeling, config and BatchNorm grouping."""

    spec: dict
    canonical: bool = False
    config: tuple[tuple[str, int], ...] = (("stem_channels", 128), ("num_stacks", 3), ("cells_per_stack", 3))
    ghost_groups: int = 1  # BatchNorm statistics over this many equal slices of the batch
    float64: bool = False  # TensorFlow in float64 too (slow on a CPU: ~1 min at the default config)


#: A small network: two stacks (one downsampling, channels doubled) of two cells.
SMALL = (("stem_channels", 16), ("num_stacks", 2), ("cells_per_stack", 2))
#: Six vertices of which two are pruned: vertex 3 (a max-pool) has no way to the output, so
#: neither has vertex 2 (whose only successor it is); left: input -> conv3x3 -> conv3x3 -> output,
#: plus the input's projection to the output.
PRUNED_VERTICES = {
    "matrix": [
        [0, 1, 1, 0, 0, 1],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0],
    ],
    "ops": ["input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "output"],
}
CASES = {
    "inception-canonical": Case(INCEPTION, canonical=True, float64=True),
    "inception-as-given": Case(INCEPTION),
    "inception-ghost-bn": Case(INCEPTION, ghost_groups=2),
    "seven-vertex-nine-edge-small": Case(json.loads(SEVEN_VERTEX_NINE_EDGE_JSON.read_text()), config=SMALL),
    "pruned-vertices-small": Case(PRUNED_VERTICES, config=SMALL),
}

BATCH = 4
SEED = 0
BN_MOMENTUM = 0.997
#: TensorFlow's float32 error may exceed nbcompile's float32 error by this factor (both against the
#: float64 reference): different but equally exact float32 algorithms (convolution, reductions).
SLACK = 4.0
#: Floor of the allowed relative error: a few float32 ulps (2^-23 ≈ 1.2e-7).
FLOOR = 1e-6
#: The goal for eval-mode logits, relative to their largest magnitude.
EVAL_GOAL = 1e-5
#: Both sides in float64, relative to each tensor's largest magnitude: logits and gradients, and
#: the quantities that TensorFlow computes through float32 constants (see the float64 test).
FLOAT64_TOLERANCE = 1e-9
FLOAT64_CONSTANTS = 1e-6
_THROUGH_CONSTANTS = ("delta_", "all_delta", "mean", "batch_mean", "loss")


def _units(spec: dict, num_stacks: int, cells_per_stack: int) -> list[str]:
    """The conv-BN-ReLU modules in the order upstream's model_builder creates them: the stem, then
    per cell and vertex the input projection before the vertex's conv, the output projection last
    (``spec``: the cell as built, pruned)."""
    matrix, ops = spec["matrix"], spec["ops"]
    n = len(ops)
    units = ["stem"]
    for stack in range(num_stacks):
        for index in range(cells_per_stack):
            cell = cell_attribute(stack, index)
            for vertex in range(1, n - 1):
                if matrix[0][vertex]:
                    units.append(f"{cell}.{projection_name(vertex)}")
                if ops[vertex].startswith("conv"):
                    units.append(f"{cell}.{op_name(vertex)}")
            if matrix[0][n - 1]:
                units.append(f"{cell}.{projection_name(n - 1)}")
    return units


def _weights(model: torch.nn.Module, units: list[str], dtype: type = np.float32) -> dict[str, np.ndarray]:
    """Copies of the model's weights under tests/tf_network.py's names (PyTorch layouts)."""
    state = {name: value.detach().cpu().numpy().astype(dtype) for name, value in model.state_dict().items()}
    out = {}
    for i, unit in enumerate(units):
        out[f"conv{i}"] = state[f"{unit}.conv.weight"]
        out[f"gamma{i}"] = state[f"{unit}.bn.weight"]
        out[f"beta{i}"] = state[f"{unit}.bn.bias"]
        out[f"mean{i}"] = state[f"{unit}.bn.running_mean"]
        out[f"var{i}"] = state[f"{unit}.bn.running_var"]
    out["dense_w"] = state["classifier.weight"]
    out["dense_b"] = state["classifier.bias"]
    return out


def _run_torch(
    model: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    dtype: torch.dtype,
    units,
    ghost_groups: int,
    channels_last=False,
) -> dict:
    """Everything tests/tf_network.py computes, by (a copy of) nbcompile's model and recipe in ``dtype``
    (``channels_last``: in that memory format, whose convolutions round differently), with
    nbcompile's ghost BatchNorm where ``ghost_groups`` > 1."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = copy.deepcopy(model).to(dtype=dtype, memory_format=memory_format)
    if ghost_groups > 1:
        assert use_ghost_batch_norm(model, ghost_groups) == len(units)
    x = torch.from_numpy(images).to(dtype).contiguous(memory_format=memory_format)
    y = torch.from_numpy(labels).long()
    before = _weights(model, units, np.float64)
    out = {}
    with torch.no_grad():
        out["eval_logits"] = model.eval()(x).double().numpy()
    model.train()
    logits = model(x)
    params = list(model.parameters())
    # nbcompile.train.recipe.nasbench_loss, less its cast of the logits to float32
    loss = F.cross_entropy(logits, y) + WEIGHT_DECAY * l2_penalty(params)
    loss.backward()
    out["train_logits"] = logits.detach().double().numpy()
    out["loss"] = np.asarray(loss.item())
    grads = {name: p.grad.detach().double().numpy() for name, p in model.named_parameters()}
    for i, unit in enumerate(units):
        out[f"grad_conv{i}"] = grads[f"{unit}.conv.weight"]
        out[f"grad_gamma{i}"] = grads[f"{unit}.bn.weight"]
        out[f"grad_beta{i}"] = grads[f"{unit}.bn.bias"]
    out["grad_dense_w"] = grads["classifier.weight"]
    out["grad_dense_b"] = grads["classifier.bias"]
    TFRMSProp(params, lr=BASE_LR, decay=RMS_DECAY, momentum=MOMENTUM, eps=EPSILON).step()
    after = _weights(model, units, np.float64)
    if ghost_groups > 1:  # the update with the slices' mean statistics: what they imply is compared
        out.update(_implied_batch_statistics(after, before))
        after = _trained(after)
    return _derived(out, before, after)


def _run_tf(source: Path, target: Path, dtype: str, weights: dict) -> tuple[dict, dict]:
    """tests/tf_network.py's results in ``dtype`` (as float64, with the derived quantities), and its
    gradients under the weights' names."""
    environment = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "tf_network.py"), str(source), str(target), dtype],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = {name: value.astype(np.float64) for name, value in np.load(target).items()}
    after = {name: out.pop(name) for name in weights}
    ghost_batches = sorted({name.split("_")[0] for name in out if name.startswith("ghost")})
    if ghost_batches:  # updated slice by slice: each slice's statistics, then their mean
        moving = [weights]
        for ghost in ghost_batches:
            moving.append({name[len(ghost) + 1 :]: out.pop(name) for name in list(out) if name.startswith(ghost + "_")})
        implied = [_implied_batch_statistics(now, then) for then, now in itertools.pairwise(moving)]
        out.update({name: np.mean([each[name] for each in implied], axis=0) for name in implied[0]})
        after = _trained(after)
    grads = {name[len("grad_") :]: value for name, value in out.items() if name.startswith("grad_")}
    return _derived(out, weights, after), grads


def _step_from(gradients: dict, weights: dict, dtype: torch.dtype) -> dict:
    """``iso_delta_*``: the change of each variable by one TFRMSProp step from ``weights`` with
    ``gradients`` (both under tests/tf_network.py's names), in ``dtype``."""
    names = sorted(gradients)
    params = [torch.tensor(weights[name], dtype=dtype) for name in names]
    for param, name in zip(params, names):
        param.grad = torch.tensor(gradients[name], dtype=dtype)
    TFRMSProp(params, lr=BASE_LR, decay=RMS_DECAY, momentum=MOMENTUM, eps=EPSILON).step()
    return {f"iso_delta_{name}": param.double().numpy() - weights[name] for param, name in zip(params, names)}


def _derived(out: dict, before: dict, after: dict) -> dict:
    """Add, per weight, its change in the step (``delta_*``), and where ``after`` holds moving
    statistics, them and the batch statistics they imply (``batch_mean*``, ``batch_var*``)."""
    out.update(_implied_batch_statistics(after, before))
    for name, value in after.items():
        if name.startswith(("mean", "var")):
            out[name] = value
        else:
            out[f"delta_{name}"] = value - before[name]
    return out


def _implied_batch_statistics(after: dict, before: dict) -> dict:
    """``batch_mean*``, ``batch_var*``: the batch statistics that moved the moving statistics from
    ``before`` to ``after`` (momentum 0.997; the variance unbiased)."""
    return {
        f"batch_{name}": (value - BN_MOMENTUM * before[name]) / (1.0 - BN_MOMENTUM)
        for name, value in after.items()
        if name.startswith(("mean", "var"))
    }


def _trained(weights: dict) -> dict:
    """The trainable weights only (no moving statistics)."""
    return {name: value for name, value in weights.items() if not name.startswith(("mean", "var"))}


def _randomize_batch_norm(model: torch.nn.Module, generator: torch.Generator) -> None:
    """BatchNorm scale, offset and moving statistics away from their initial 1, 0, 0, 1."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(0.5 + torch.rand(c, generator=generator))
                module.bias.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(c, generator=generator))


def _needs_tensorflow() -> None:
    for module in ("tensorflow", "tf_keras", "nasbench_keras"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (see the tf extra and .ci/run)")


@pytest.fixture(scope="module", params=list(CASES))
def results(request, tmp_path_factory) -> dict:
    _needs_tensorflow()
    case = CASES[request.param]
    config = dict(case.config)
    tmp = tmp_path_factory.mktemp("tfdiff")
    path = nbcompile.compile_to_file(case.spec, tmp / "generated", canonical=case.canonical, **config)
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        model = nbcompile.load_model(path)
    built = sys.modules[type(model).__module__].SPEC
    generator = torch.Generator().manual_seed(SEED + 1)
    _randomize_batch_norm(model, generator)
    images = torch.randn(BATCH, 3, 32, 32, generator=generator).numpy()
    labels = torch.randint(0, 10, (BATCH,), generator=generator).numpy()
    units = _units(built, config["num_stacks"], config["cells_per_stack"])
    convs = {name.rsplit(".", 2)[0] for name, _ in model.named_parameters() if name.endswith("conv.weight")}
    assert convs == set(units), "every conv-BN-ReLU of the network is transferred exactly once"

    # TensorFlow gets the cell as given and prunes it its own way; canonical: as nbcompile relabeled it
    given = ("matrix", "ops") if case.canonical else ("original_matrix", "original_ops")
    source = tmp / "in.npz"
    np.savez(
        source,
        matrix=np.asarray(built[given[0]]),
        ops=np.asarray(built[given[1]]),
        ghost_groups=case.ghost_groups,
        **config,
        images=images,
        labels=labels,
        lr=BASE_LR,
        decay=RMS_DECAY,
        momentum=MOMENTUM,
        epsilon=EPSILON,
        weight_decay=WEIGHT_DECAY,
        **_weights(model, units),
    )
    weights = _weights(model, units, np.float64)
    tf_side, tf_grads = _run_tf(source, tmp / "out32.npz", "float32", weights)
    tf64 = _run_tf(source, tmp / "out64.npz", "float64", weights)[0] if case.float64 else None
    # TF's step against TFRMSProp's from the same (TF's) gradients: the optimizers alone
    tf_side.update({f"iso_{name}": tf_side[name] for name in tf_side if name.startswith("delta_")})
    isolated = {dtype: _step_from(tf_grads, weights, dtype) for dtype in (torch.float32, torch.float64)}
    run = {"model": model, "images": images, "labels": labels, "units": units, "ghost_groups": case.ghost_groups}
    return {
        "tf": tf_side,
        "tf64": tf64,
        "float32": {**_run_torch(dtype=torch.float32, **run), **isolated[torch.float32]},
        "float32_channels_last": {
            **_run_torch(dtype=torch.float32, channels_last=True, **run),
            **isolated[torch.float32],
        },
        "float64": {**_run_torch(dtype=torch.float64, **run), **isolated[torch.float64]},
    }


def _error(a: np.ndarray, reference: np.ndarray) -> float:
    scale = float(np.max(np.abs(reference)))
    return float(np.max(np.abs(a - reference))) / scale if scale else float(np.max(np.abs(a)))


def _with_totals(quantities: dict) -> dict:
    """Add every gradient, and every variable's change, concatenated into one vector."""
    names = sorted(quantities)
    for prefix in ("grad_", "delta_"):
        parts = [quantities[name].ravel() for name in names if name.startswith(prefix)]
        quantities[f"all_{prefix[:-1]}"] = np.concatenate(parts)
    return quantities


def _groups(names) -> dict[str, list[str]]:
    """The compared quantities, grouped for the report."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        for prefix, group in (
            ("eval_logits", "eval logits"),
            ("train_logits", "train logits"),
            ("loss", "loss"),
            ("grad_", "gradients"),
            ("delta_", "RMSProp step (change of each variable)"),
            ("batch_", "batch statistics implied by the moving ones"),
            ("mean", "moving means after the step"),
            ("iso_delta_", "RMSProp step from TF's gradients"),
            ("all_grad", "gradients, all as one vector"),
            ("all_delta", "RMSProp step, all as one vector"),
            ("var", "moving variances after the step"),
        ):
            if name.startswith(prefix):
                groups.setdefault(group, []).append(name)
                break
    return groups


def test_tensorflow_matches_nbcompile(results: dict) -> None:
    tf_side, float32, other, reference = (
        _with_totals(results[run]) for run in ("tf", "float32", "float32_channels_last", "float64")
    )
    assert set(tf_side) == set(reference)
    failures, lines = [], []
    for group, names in _groups(reference).items():
        # the float32 error of this kind of quantity in this network, as nbcompile's float32 runs show it
        scale = max(_error(run[name], reference[name]) for run in (float32, other) for name in names)
        allowed = max(SLACK * scale, FLOOR)
        if group == "eval logits":
            allowed = min(allowed, EVAL_GOAL)
        worst = {"tf": 0.0, "abs": 0.0, "rel": 0.0, "elementwise": 0.0}
        for name in names:
            ref = reference[name]
            err_tf = _error(tf_side[name], ref)
            if err_tf > allowed:
                failures.append(f"{name}: TF's error {err_tf:.2e} > {allowed:.2e} ({group}: torch float32 {scale:.2e})")
            diff = np.abs(tf_side[name] - float32[name])
            big = np.abs(ref) > 1e-3 * np.max(np.abs(ref))
            worst["tf"] = max(worst["tf"], err_tf)
            worst["abs"] = max(worst["abs"], float(np.max(diff)))
            worst["rel"] = max(worst["rel"], _error(tf_side[name], float32[name]))
            if np.any(big):
                worst["elementwise"] = max(worst["elementwise"], float(np.max(diff[big] / np.abs(ref[big]))))
        lines.append(
            f"{group:44s} TF−torch: max abs {worst['abs']:.2e} rel {worst['rel']:.2e}"
            f" (elementwise {worst['elementwise']:.2e})"
            f" | vs float64: TF {worst['tf']:.2e}, torch {scale:.2e}, allowed {allowed:.2e}"
        )
    print("\n" + "\n".join(lines))
    assert not failures, "\n".join(failures)


def test_tensorflow_matches_nbcompile_in_float64(results: dict) -> None:
    """Both sides in float64, free of float32's rounding: the ill-conditioned gradients too must agree
    to ``FLOAT64_TOLERANCE``. Moving variances are left out: TensorFlow's float64 BatchNorm is the
    non-fused one, which updates them with the biased batch variance (the float32 test checks them).
    Quantities through a hyperparameter get ``FLOAT64_CONSTANTS`` (measured: ≤ 8e-8): TF makes
    BatchNorm's 1 − 0.997 and RMSProp's lr, decay, momentum and ε float32 tensors, cast to float64
    (relative ~1e-8, amplified up to ~10× in the batch statistics derived from the moving ones),
    and ``tf.compat.v1.losses`` reduces the cross-entropy in float32 (the loss's value only)."""
    if results["tf64"] is None:
        pytest.skip("TensorFlow runs in float64 for the Inception-like cell's canonical labeling only")
    tf64 = _with_totals(dict(results["tf64"]))
    reference = _with_totals({name: value for name, value in results["float64"].items() if not name.startswith("iso_")})
    names = [name for name in reference if not name.startswith(("var", "batch_var"))]
    errors = {name: _error(tf64[name], reference[name]) for name in names}
    lines = []
    for group, group_names in _groups(names).items():
        allowed = FLOAT64_CONSTANTS if group_names[0].startswith(_THROUGH_CONSTANTS) else FLOAT64_TOLERANCE
        worst = max(errors[name] for name in group_names)
        lines.append(f"{group:44s} TF64 vs torch64: {worst:.2e} (allowed {allowed:.0e})")
    print("\n" + "\n".join(lines))
    failures = [
        f"{name}: {error:.2e}"
        for name, error in errors.items()
        if error > (FLOAT64_CONSTANTS if name.startswith(_THROUGH_CONSTANTS) else FLOAT64_TOLERANCE)
    ]
    assert not failures, "\n".join(failures)
