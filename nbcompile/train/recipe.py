"""Upstream's training recipe (``lib/training_time.py``, ``lib/evaluate.py``) in PyTorch: TF's
RMSProp, the cosine-by-step schedule, cross-entropy plus L2 over every trainable variable, and "ghost" BatchNorm."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

#: Upstream's constants (``lib/config.py``, learning rate × 2 TPU shards).
BASE_LR = 0.2
RMS_DECAY = 0.9
MOMENTUM = 0.9
EPSILON = 1.0
WEIGHT_DECAY = 1e-4
BATCH_SIZE = 256
TRAIN_IMAGES = 40_000
#: Evaluation points, as fractions of the budget (step 0, halfway, final).
EVALUATION_FRACTIONS = (0.0, 0.5, 1.0)


def steps_for(epochs: float, train_images: int = TRAIN_IMAGES, batch_size: int = BATCH_SIZE) -> int:
    """``int(E · N / B)``: upstream's step count for ``epochs`` (16,875 for 108 epochs)."""
    return int(epochs * train_images / batch_size)


def cosine_lr(step: int, total_steps: int, base_lr: float = BASE_LR) -> float:
    """COSINE_BY_STEP: ``0.5 · base · (1 + cos(π · step / total))``, forced to 0 at step 0."""
    if step == 0:
        return 0.0
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * step / total_steps))


def schedule_tensor(total_steps: int, base_lr: float = BASE_LR, device: torch.device | str = "cpu") -> torch.Tensor:
    """The learning rate of every step ``0..total_steps`` as float32, to index on the device."""
    values = [cosine_lr(step, total_steps, base_lr) for step in range(total_steps + 1)]
    return torch.tensor(values, dtype=torch.float32, device=device)


def l2_penalty(parameters: list[torch.Tensor]) -> torch.Tensor:
    """``Σ sum(v²) / 2`` over ``parameters`` (TF's ``tf.nn.l2_loss`` summed)."""
    norms = torch._foreach_norm(parameters)
    return torch.stack(norms).square().sum() * 0.5


def nasbench_loss(
    logits: torch.Tensor, labels: torch.Tensor, parameters: list[torch.Tensor], weight_decay: float = WEIGHT_DECAY
) -> torch.Tensor:
    """Mean softmax cross-entropy + ``weight_decay · Σ v²/2`` over every trainable variable."""
    return F.cross_entropy(logits.float(), labels) + weight_decay * l2_penalty(parameters)


class TFRMSProp(torch.optim.Optimizer):
    """``tf.train.RMSPropOptimizer`` (non-centered), which ``torch.optim.RMSprop`` is not::

        ms  ← decay · ms + (1 − decay) · g²        (ms starts at 1.0)
        mom ← momentum · mom + lr · g / √(ms + ε)   (ε inside the root, lr inside the buffer)
        w   ← w − mom

    ``lr`` may be a float or a 0-dim tensor on the parameters' device (updated in place by the
    caller, so that a compiled step never sees a new Python constant and never syncs).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float | torch.Tensor = BASE_LR,
        decay: float = RMS_DECAY,
        momentum: float = MOMENTUM,
        eps: float = EPSILON,
        foreach: bool = True,
    ) -> None:
        if not 0.0 <= decay < 1.0 or not 0.0 <= momentum < 1.0 or eps < 0.0:
            raise ValueError(f"invalid TFRMSProp hyperparameters decay={decay}, momentum={momentum}, eps={eps}")
        super().__init__(params, {"lr": lr, "decay": decay, "momentum": momentum, "eps": eps, "foreach": foreach})

    def initialize_state(self) -> None:
        """Create every parameter's slots now (``ms`` = 1, ``mom`` = 0), as the first step would:
        a compiled step then sees the same state from its first call on."""
        for group in self.param_groups:
            for p in group["params"]:
                if not self.state[p]:
                    self.state[p]["ms"] = torch.ones_like(p, memory_format=torch.preserve_format)
                    self.state[p]["mom"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _slots(
        self, group: dict
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        params, grads, mean_squares, moments = [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["ms"] = torch.ones_like(p, memory_format=torch.preserve_format)
                state["mom"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            mean_squares.append(state["ms"])
            moments.append(state["mom"])
        return params, grads, mean_squares, moments

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, mean_squares, moments = self._slots(group)
            if not params:
                continue
            lr, decay, momentum, eps = group["lr"], group["decay"], group["momentum"], group["eps"]
            if group["foreach"]:
                torch._foreach_mul_(mean_squares, decay)
                torch._foreach_addcmul_(mean_squares, grads, grads, value=1.0 - decay)
                denominators = torch._foreach_add(mean_squares, eps)
                torch._foreach_sqrt_(denominators)
                updates = torch._foreach_div(grads, denominators)
                torch._foreach_mul_(updates, lr)
                torch._foreach_mul_(moments, momentum)
                torch._foreach_add_(moments, updates)
                torch._foreach_sub_(params, moments)
            else:
                for p, g, ms, mom in zip(params, grads, mean_squares, moments):
                    ms.mul_(decay).addcmul_(g, g, value=1.0 - decay)
                    mom.mul_(momentum).add_(g / (ms + eps).sqrt() * lr)
                    p.sub_(mom)
        return loss


class GhostBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics come from ``groups`` equal slices of the batch, as
    upstream's 2 TPU shards of 128 images each normalised separately.

    This is *inferred* from TF's per-replica BatchNorm on TPU, not verified against upstream (the
    step is checked against TensorFlow run one slice at a time). The moving statistics are updated
    with the mean over the groups of each group's statistics.
    """

    def __init__(self, *args, groups: int = 2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if not self.training or self.groups <= 1 or n % self.groups:
            return super().forward(x)
        # statistics and normalisation in the parameters' dtype (float32 under bf16 autocast too)
        grouped = x.reshape(self.groups, n // self.groups, *x.shape[1:]).to(self.weight.dtype)
        dims = (1, 3, 4)
        mean = grouped.mean(dims, keepdim=True)
        var = grouped.var(dims, unbiased=False, keepdim=True)
        shape = (1, 1, -1, 1, 1)
        y = (grouped - mean) * torch.rsqrt(var + self.eps)
        y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats:
            with torch.no_grad():
                count = grouped[0].numel() // x.shape[1]
                self.running_mean.lerp_(mean.reshape(self.groups, -1).mean(0), self.momentum)
                unbiased = var.reshape(self.groups, -1).mean(0) * (count / max(count - 1, 1))
                self.running_var.lerp_(unbiased, self.momentum)
                self.num_batches_tracked.add_(1)
        return y.reshape(x.shape).to(x.dtype)


def use_ghost_batch_norm(model: nn.Module, groups: int = 2) -> int:
    """Replace every ``nn.BatchNorm2d`` of ``model`` by a GhostBatchNorm2d with the same
    parameters and buffers; returns how many were replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                ghost = GhostBatchNorm2d(
                    child.num_features,
                    eps=child.eps,
                    momentum=child.momentum,
                    groups=groups,
                    device=child.weight.device,
                    dtype=child.weight.dtype,
                )
                ghost.load_state_dict(child.state_dict())
                setattr(parent, name, ghost)
                replaced += 1
    return replaced
