"""The fastest inference and training paths for a network, in one call: ``optimize``.

Inference (what measured fastest on an H200; ``benchmarks/gpu.sh``, ``benchmarks/RESULTS.md``): eval mode,
BatchNorm folded into the convs (the generated ``Network.fuse()``, else inductor freezing),
channels_last, weights cast to bf16 where the device supports it (no per-call weight casts, as
autocast would do), ``torch.compile(fullgraph=True)``, with CUDA graphs on CUDA.

Training: channels_last, bf16 autocast (fp32 weights), a fused (CUDA) or foreach (CPU) SGD or
the caller's optimizer, the network compiled cell by cell (regional compilation: cells of the same class share one
compiled graph, which cuts compile time); on CUDA, the whole step (forward, loss, backward and
optimizer step) captured in one CUDA graph and replayed.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

import torch
from torch import nn
from torch.nn import functional as F

from nbcompile.compiler.naming import is_cell_class_name
from nbcompile.errors import ConfigError
from nbcompile.runtime.device import DTYPES, autocast, resolve_dtype

_Compiled = TypeVar("_Compiled")
#: Makes the optimizer of ``optimize(train=True)`` from the model's parameters.
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass(frozen=True)
class Applied:
    """What ``optimize`` did, for the one-line summary."""

    train: bool
    device: str
    dtype: str
    fold: str  # "fuse()", "inductor freezing" or "" (training)
    compile: str  # "whole network", "per cell (N distinct cell classes)" or "off"
    cuda_graphs: bool
    optimizer: str = ""

    def summary(self) -> str:
        parts = ["train" if self.train else "eval", self.device]
        parts.append(("bf16 autocast" if self.train else "bf16 weights") if self.dtype == "bf16" else "fp32")
        parts.append("channels_last")
        if self.fold:
            parts.append(f"BN folded by {self.fold}")
        parts.append(f"torch.compile: {self.compile}")
        if not self.cuda_graphs:
            parts.append("no CUDA graphs")
        else:
            parts.append("one CUDA graph of the whole step" if self.train else "CUDA graphs")
        if self.optimizer:
            parts.append(self.optimizer)
        return "optimize: " + ", ".join(parts)


class _Inference(nn.Module):
    """The prepared network with its input conversion: one graph to compile or export."""

    def __init__(self, network: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.network = network
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        return self.network(x).float()


def prepare_inference(model: nn.Module, device: torch.device, dtype: str) -> tuple[nn.Module, bool]:
    """A copy of ``model`` ready for inference: eval, BN folded if it has ``fuse()``, on ``device``,
    channels_last, weights in ``dtype``. Returns it and whether BN was folded."""
    network = copy.deepcopy(model).eval()
    fuse = getattr(network, "fuse", None)
    folded = callable(fuse)
    if folded:
        network = fuse() or network
    network = network.to(device=device, dtype=DTYPES[dtype], memory_format=torch.channels_last)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return _Inference(network, DTYPES[dtype]), folded


class OptimizedNetwork(nn.Module):
    """An inference network from ``optimize``: call it like the original (fp32 logits out)."""

    def __init__(self, compiled: Callable[[torch.Tensor], torch.Tensor], prepared: nn.Module, applied: Applied) -> None:
        super().__init__()
        self.prepared = prepared
        self.__dict__["_compiled"] = compiled  # not a submodule: its weights are ``prepared``'s
        self.applied = applied
        self.summary = applied.summary()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.applied.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
                return self._compiled(x).clone()  # the graph's output buffer is reused by the next call
            return self._compiled(x)


@dataclass
class TrainingStep:
    """One training step from ``optimize(train=True)``: ``step(inputs, labels)`` runs forward, loss,
    backward and the optimizer step, and returns the loss (detached). After a step, each
    parameter's ``.grad`` holds that step's gradient.

    Where ``optimize`` has recorded the step into a CUDA graph (``graph``), a call copies its
    batch into the graph's input tensors and replays the graph: the same kernels on the same
    tensors (weights, BatchNorm buffers, optimizer slots, and a learning rate held as a device
    tensor), launched at once. Batches must then keep the captured shape."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    device: torch.device
    dtype: str
    applied: Applied
    graph: torch.cuda.CUDAGraph | None = field(default=None, init=False, repr=False)
    _static: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = field(default=None, init=False, repr=False)

    @property
    def summary(self) -> str:
        return self.applied.summary()

    def __call__(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self._static is None:
            self.optimizer.zero_grad(set_to_none=True)
            return self._forward_backward_step(inputs, labels).clone()
        static_inputs, static_labels, static_loss = self._static
        if inputs.shape != static_inputs.shape or labels.shape != static_labels.shape:
            raise ValueError(
                f"this training step was captured in a CUDA graph for inputs {tuple(static_inputs.shape)} and "
                f"labels {tuple(static_labels.shape)}, got {tuple(inputs.shape)} and {tuple(labels.shape)}"
            )
        static_inputs.copy_(inputs)
        static_labels.copy_(labels)
        self.graph.replay()
        return static_loss.clone()  # the graph overwrites its loss tensor at the next replay

    def _forward_backward_step(self, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Forward, loss, backward and optimizer step, gradients accumulated into ``.grad`` (a call
        clears them first; a capture starts without them, so that they are allocated in the
        graph). With CUDA graphs, autocast's cache of cast weights is off, as a capture requires,
        in the warm-up steps too (dynamo guards on it: a change would recompile in the capture)."""
        inputs = inputs.to(self.device).contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.dtype, cache=not self.applied.cuda_graphs):
            loss = self.loss_fn(self.model(inputs), labels.to(self.device))
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def _capture(self, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        """Record one step on batches shaped as ``inputs`` and ``labels`` into a CUDA graph; later
        calls replay it. Recording runs nothing: weights, buffers and optimizer state are left as
        they are. The step must have run (compiled, warmed up) on such batches before, and the
        optimizer's state must exist already: the graph holds on to those tensors."""
        static_inputs = inputs.to(self.device).contiguous(memory_format=torch.channels_last).clone()
        static_labels = labels.to(self.device).clone()
        self.optimizer.zero_grad(set_to_none=True)  # the gradients are allocated inside the graph
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self.device)
        with torch.cuda.graph(graph):
            static_loss = self._forward_backward_step(static_inputs, static_labels)
        self.graph, self._static = graph, (static_inputs, static_labels, static_loss)


def _regions(model: nn.Module) -> Iterator[nn.Module]:
    """The cells of a generated network (its direct children whose classes are named as the
    compiler names cells), else the model itself: the units compiled one by one."""
    children = [child for child in model.children() if is_cell_class_name(type(child).__name__)]
    yield from children or [model]


def optimize(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    train: bool = False,
    dtype: str = "auto",
    device: str | torch.device | None = None,
    backend: str = "inductor",
    cuda_graphs: bool | None = None,
    freeze: bool | None = None,
    lr: float = 0.01,
    momentum: float = 0.9,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    optimizer: OptimizerFactory | None = None,
    verbose: bool = False,
) -> OptimizedNetwork | TrainingStep:
    """The fastest inference network, or training step, for ``model`` on ``example_input``'s device.

    Inference returns an ``OptimizedNetwork`` (a copy: ``model`` is left as it is) that takes the
    same input and returns fp32 logits; it has been called once on ``example_input`` (the compile
    happens here, not on your first call). ``train=True`` returns a ``TrainingStep`` over
    ``model`` itself (moved to channels_last; its parameters are the ones trained), warmed up
    with a step on ``example_input`` and random labels of a local generator, after which its
    weights, buffers and optimizer state are put back in place. ``optimizer`` makes the training
    optimizer from the parameters (default: SGD with ``lr`` and ``momentum``); its state is
    created before the first step where that changes no step (SGD's momentum buffers as zeros,
    the optimizer's ``initialize_state()`` if it has one). ``dtype`` is auto (bf16 on a CUDA
    device that supports it), bf16 or fp32; ``cuda_graphs`` defaults to on for CUDA: for training, the whole
    step is then captured in one CUDA graph for batches of ``example_input``'s shape (a learning
    rate meant to change must be a 0-dim device tensor in the optimizer, updated in place; a
    float is recorded into the graph as it is). ``freeze`` (inference, inductor backend) adds
    inductor freezing, by default only for a model without ``fuse()``. ``summary`` says in one line
    what was applied; ``verbose`` prints it to stderr.
    """
    device = torch.device(device) if device is not None else example_input.device
    dtype = resolve_dtype(device, dtype)
    use_graphs = device.type == "cuda" if cuda_graphs is None else cuda_graphs
    if use_graphs and device.type != "cuda":
        raise ConfigError("CUDA graphs need a CUDA device", field="cuda_graphs")
    example = example_input.to(device)
    if train:
        result: OptimizedNetwork | TrainingStep = _optimize_training(
            model, example, device, dtype, backend, use_graphs, lr, momentum, loss_fn, optimizer
        )
    else:
        mode = "reduce-overhead" if use_graphs else None
        result = _optimize_inference(model, example, device, dtype, backend, mode, freeze)
    if verbose:
        print(result.summary, file=sys.stderr)
    return result


def _optimize_inference(
    model: nn.Module,
    example: torch.Tensor,
    device: torch.device,
    dtype: str,
    backend: str,
    mode: str | None,
    freeze: bool | None,
) -> OptimizedNetwork:
    prepared, folded = prepare_inference(model, device, dtype)
    freeze = backend == "inductor" and (not folded if freeze is None else freeze)
    folds = [name for name, used in (("fuse()", folded), ("inductor freezing", freeze)) if used]
    applied = Applied(
        train=False,
        device=str(device),
        dtype=dtype,
        fold=" and ".join(folds),
        compile="whole network" if backend == "inductor" else f"whole network ({backend} backend)",
        cuda_graphs=mode is not None,
    )
    # Inductor settings go in as options, not a config patch: options are part of the backend's
    # identity, so a later optimize() with other settings cannot reuse this compiled graph.
    settings = {"mode": mode} if backend != "inductor" else {"options": {"freezing": freeze, **_mode_options(mode)}}

    def compile_and_warm_up(fullgraph: bool, applied: Applied) -> OptimizedNetwork:
        network = OptimizedNetwork(
            torch.compile(prepared, backend=backend, fullgraph=fullgraph, **settings), prepared, applied
        )
        for _ in range(3 if mode else 1):  # CUDA graphs are recorded on the third call
            network(example)
        return network

    return _whole_graph_else_breaks(compile_and_warm_up, applied)


def _whole_graph_else_breaks(attempt: Callable[[bool, Applied], _Compiled], applied: Applied) -> _Compiled:
    """``attempt(fullgraph=True)`` (compile and warm up); where dynamo cannot trace a whole graph,
    ``attempt(fullgraph=False)``, with the graph breaks said in ``applied``."""
    try:
        return attempt(True, applied)
    except torch._dynamo.exc.Unsupported:
        pass
    return attempt(False, replace(applied, compile=applied.compile + " with graph breaks"))


def _mode_options(mode: str | None) -> dict[str, object]:
    """The inductor options ``torch.compile``'s ``mode`` stands for (CUDA graphs for reduce-overhead)."""
    if mode is None:
        return {}
    from torch._inductor import list_mode_options

    return dict(list_mode_options(mode))


def _optimize_training(
    model: nn.Module,
    example: torch.Tensor,
    device: torch.device,
    dtype: str,
    backend: str,
    cuda_graphs: bool,
    lr: float,
    momentum: float,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    make_optimizer: OptimizerFactory | None,
) -> TrainingStep:
    model.to(device=device, memory_format=torch.channels_last).train()
    regions = list(_regions(model))
    fused = device.type == "cuda"
    if make_optimizer is None:
        optimizer = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, fused=True if fused else None, foreach=None if fused else True
        )
        described = f"SGD(momentum={momentum}, {'fused' if fused else 'foreach'})"
    else:
        optimizer = make_optimizer(model.parameters())
        described = type(optimizer).__name__
    _create_state(optimizer)
    distinct = len({type(region) for region in regions})
    where = "whole network" if regions == [model] else f"per cell ({len(regions)} cells, {distinct} distinct classes)"
    applied = Applied(
        train=True,
        device=str(device),
        dtype=dtype,
        fold="",
        compile=where if backend == "inductor" else f"{where}, {backend} backend",
        cuda_graphs=cuda_graphs,
        optimizer=described,
    )

    def compile_and_warm_up(fullgraph: bool, applied: Applied) -> TrainingStep:
        for region in regions:
            # No CUDA graphs of torch.compile's own (one per cell): the whole step is captured below.
            region.compile(backend=backend, fullgraph=fullgraph)
        step = TrainingStep(model, optimizer, loss_fn, device, dtype, applied)
        _warm_up(step, example)
        return step

    step = _whole_graph_else_breaks(compile_and_warm_up, applied)
    if cuda_graphs:
        step._capture(example, _random_labels(model, example))
    return step


def _create_state(optimizer: torch.optim.Optimizer) -> None:
    """Create the optimizer's state before the first step, where that gives the same steps, so that
    a CUDA graph can hold on to it: through its ``initialize_state()`` if it has one (TFRMSProp);
    SGD's momentum buffers as zeros, without dampening (its first step, ``buf = grad``, equals
    ``momentum · 0 + grad``)."""
    initialize = getattr(optimizer, "initialize_state", None)
    if callable(initialize):
        initialize()
    elif isinstance(optimizer, torch.optim.SGD):
        for group in optimizer.param_groups:
            if group["momentum"] and not group["dampening"]:
                for p in group["params"]:
                    optimizer.state[p].setdefault("momentum_buffer", torch.zeros_like(p))


def _num_labels(model: nn.Module) -> int:
    """The output width of the model's last Linear layer (its classifier)."""
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ConfigError("optimize(train=True) needs a model whose last Linear layer is its classifier", field="model")
    return linears[-1].out_features


def _random_labels(model: nn.Module, example: torch.Tensor) -> torch.Tensor:
    """Labels for ``example``'s batch, from a local generator (the global RNG is left alone)."""
    generator = torch.Generator(device=example.device).manual_seed(0)
    return torch.randint(0, _num_labels(model), (example.shape[0],), generator=generator, device=example.device)


def _warm_up(step: TrainingStep, example: torch.Tensor) -> None:
    """Compile by running steps on ``example``, then put back the weights, buffers and optimizer
    state, in place: every tensor the caller may hold (a learning-rate tensor in the optimizer's
    param groups, a state slot) stays the same object; state the steps created is removed. Before
    a CUDA graph capture, two steps on a side stream (as PyTorch asks), and the optimizer must not
    have created state (the graph would hold on to it, and the removal would leave it behind)."""
    labels = _random_labels(step.model, example)
    state = {name: value.detach().clone() for name, value in step.model.state_dict().items()}
    slots = {p: {key: _copy(value) for key, value in values.items()} for p, values in step.optimizer.state.items()}
    graphs = step.applied.cuda_graphs
    created = False
    try:
        with _side_stream(example.device) if graphs else contextlib.nullcontext():
            for _ in range(2 if graphs else 1):
                step(example, labels)
    finally:
        with torch.no_grad():
            for name, value in step.model.state_dict().items():
                value.copy_(state[name])
            for p in list(step.optimizer.state):
                values = step.optimizer.state[p]
                if p not in slots:
                    created = created or bool(values)
                    del step.optimizer.state[p]
                    continue
                for key in [key for key in values if key not in slots[p]]:
                    created = True
                    del values[key]
                for key, saved in slots[p].items():
                    if torch.is_tensor(saved) and torch.is_tensor(values.get(key)):
                        values[key].copy_(saved)
                    else:
                        values[key] = saved
        step.optimizer.zero_grad(set_to_none=True)
    if graphs and created:
        raise ConfigError(
            f"CUDA graphs need the optimizer's state before the first step: {type(step.optimizer).__name__} "
            "creates it in its first step (give it an initialize_state() method, or pass cuda_graphs=False)",
            field="cuda_graphs",
        )


@contextlib.contextmanager
def _side_stream(device: torch.device) -> Iterator[None]:
    """Run the block on a new CUDA stream of ``device``, ordered after and before the current one."""
    current = torch.cuda.current_stream(device)
    stream = torch.cuda.Stream(device)
    stream.wait_stream(current)
    try:
        with torch.cuda.stream(stream):
            yield
    finally:
        current.wait_stream(stream)


def _copy(value: object) -> object:
    """A copy of an optimizer state value: tensors cloned, anything else deep-copied."""
    return value.detach().clone() if torch.is_tensor(value) else copy.deepcopy(value)
