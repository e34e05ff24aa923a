"""Upstream's training protocol around the recipe: how ``training_time`` is counted (never the
compilation or the evaluations), the ``train_seconds`` stop, ghost BatchNorm by default, and the
float32 math of each precision, set for a run only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from cifar_files import one_thread, synthetic_data
from example_cells import INCEPTION as INCEPTION_CELL

from nbcompile.compiler.config import NetworkConfig
from nbcompile.runtime.device import float32_math
from nbcompile.space.spec import ModelSpec
from nbcompile.train import loop, recipe
from nbcompile.train.loop import DeviceData, TrainConfig, Trainer, evaluation_steps, train_run, upstream_seconds

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)
INCEPTION = ModelSpec(**INCEPTION_CELL)
TINY = NetworkConfig(stem_channels=8, num_stacks=1, cells_per_stack=1)

#: 2 epochs of 256 images in batches of 32: 16 steps, evaluated after steps 1, 8 and 16.
CONFIG = TrainConfig(epochs=2, batch_size=32, loss_every=1)
COMPILE_SECONDS, STEP_SECONDS, EVALUATION_SECONDS = 1000.0, 1.0, 500.0


class FakeClock:
    """A clock that moves only when a step, a compilation or an evaluation says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock(monkeypatch) -> FakeClock:
    """Every training step takes 1 s, the first two calls of a compiled step 1000 s more each (a
    compilation, then a recompilation once gradients exist, the worst case), and every
    evaluation of one set 500 s, on the fake clock."""
    fake = FakeClock()

    real_step, real_count = loop.make_train_step, loop.accuracy_count

    class SlowCompiledStep:
        """The eager step, with a compilation's seconds in its first two calls."""

        def __init__(self, trainer: Trainer) -> None:
            config = trainer.config
            self.optimizer = recipe.TFRMSProp(trainer.model.parameters(), lr=trainer.lr)
            self.step = loop.make_train_step(trainer.model, self.optimizer, config.weight_decay, config.precision)
            self.calls = 0

        def __call__(self, *batch):
            if self.calls < 2:
                fake.now += COMPILE_SECONDS
            self.calls += 1
            return self.step(*batch)

    def timed_step(*args, **kwargs):
        step = real_step(*args, **kwargs)

        def one(*batch):
            fake.now += STEP_SECONDS
            return step(*batch)

        return one

    def timed_count(*args, **kwargs):
        fake.now += EVALUATION_SECONDS
        return real_count(*args, **kwargs)

    monkeypatch.setattr(Trainer, "_compiled_step", lambda trainer: SlowCompiledStep(trainer))
    monkeypatch.setattr(loop, "make_train_step", timed_step)
    monkeypatch.setattr(loop, "accuracy_count", timed_count)
    return fake


def expected_times(steps: list[int]) -> list[float]:
    """Upstream's hook by hand: a call of n steps measures n − 1 of them (start of the first to
    start of the last), cumulated over the calls."""
    times, previous, total = [], 0, 0.0
    for target in steps:
        total += (target - previous - 1) * STEP_SECONDS
        times.append(total)
        previous = target
    return times


@pytest.mark.parametrize("compile_step", [False, True])
def test_training_time_counts_what_upstream_counts_and_never_the_compilation(clock, tmp_path, compile_step):
    data = DeviceData.of(synthetic_data(), "cpu")
    config = TrainConfig(epochs=2, batch_size=32, loss_every=1, compile_step=compile_step)
    result = train_run(INCEPTION, data, config, TINY, seed=3, model_dir=tmp_path, clock=clock)
    times = [e.training_time for e in result.evaluations]
    assert evaluation_steps(2, 256, 32) == [1, 8, 16]
    assert times == expected_times([1, 8, 16]) == [0.0, 6.0, 13.0]
    assert result.training_time == 13.0 and result.steps == 16 and not result.time_limit_reached
    assert result.images_per_second == 13 * 32 / 13.0  # the 13 timed steps
    # the clock did see the compilations, the warm-up steps and the evaluations: left out, not missing
    warm_up = compile_step * loop.WARMUP_STEPS * (COMPILE_SECONDS + STEP_SECONDS)
    assert clock.now == warm_up + 16 * STEP_SECONDS + 9 * EVALUATION_SECONDS
    assert (result.warmup_time > 0) == compile_step


def test_the_time_limit_stops_like_upstreams_hook_and_the_run_is_still_recorded(clock, tmp_path):
    data = DeviceData.of(synthetic_data(), "cpu")
    config = TrainConfig(epochs=2, batch_size=32, loss_every=1, nan_check_every=1, max_train_seconds=3.0)
    result = train_run(INCEPTION, data, config, TINY, seed=3, model_dir=tmp_path, clock=clock)
    # the second call's steps start at 0, 1, 2, 3, 4 s: the one starting at 4 s > 3 s is the last;
    # the third call starts past the limit and runs one step, as upstream's hook lets it
    assert [e.training_time for e in result.evaluations] == [0.0, 4.0, 4.0]
    assert result.steps == 1 + 5 + 1 and result.time_limit_reached
    assert [s for s, _ in result.losses] == list(range(1, 8))
    assert [e.current_epoch for e in result.evaluations] == [0.0, 1.0, 2.0]  # planned, as upstream records
    assert all(0.0 <= e.validation_accuracy <= 1.0 for e in result.evaluations)
    unlimited = train_run(
        INCEPTION, data, TrainConfig(epochs=2, batch_size=32, max_train_seconds=1e9), TINY, 3, tmp_path, clock=clock
    )
    assert unlimited.steps == 16 and not unlimited.time_limit_reached


def snapshot(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Weights, BatchNorm statistics and optimizer slots, by name."""
    names = {id(p): name for name, p in trainer.model.named_parameters()}
    state = {name: value.clone() for name, value in trainer.model.state_dict().items()}
    for p, slots in trainer.optimizer.state.items():
        state.update({f"{names[id(p)]}/{slot}": value.clone() for slot, value in slots.items()})
    return state


def trained_steps(tmp_path, config: TrainConfig, steps: int, device: str = "cpu") -> tuple:
    """``steps`` steps of a Trainer: losses, snapshot, graphs compiled while training, step function."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    data = DeviceData.of(synthetic_data(), device)
    folder = tmp_path / f"{config.compile_step}-{config.cuda_graphs}-{config.precision}"
    trainer = Trainer(INCEPTION, data, config, TINY, 3, folder, device)
    graphs = counters["stats"]["unique_graphs"]
    trainer.train_until(steps)
    return (
        [float(v) for _, v in trainer.losses],
        snapshot(trainer),
        counters["stats"]["unique_graphs"] - graphs,
        trainer.step_function,
    )


def steps_compiled_and_eager(tmp_path, backend: str, steps: int, **options) -> dict:
    """``steps`` steps of a compiled trainer (``optimize(train=True)`` on ``backend``) and of an
    eager one in the same layout, by whether compiled."""
    runs = {}
    for compiled in (False, True):
        config = TrainConfig(
            epochs=2, batch_size=32, loss_every=1, compile_step=compiled, compile_backend=backend, channels_last=True
        )
        runs[compiled] = trained_steps(tmp_path, dataclasses.replace(config, **options), steps)
    return runs


@pytest.mark.parametrize("options", [{}, {"ghost_bn": False}])
def test_n_compiled_steps_equal_n_eager_steps(tmp_path, options):
    """Through ``optimize(train=True)`` with aot_eager (dynamo and AOTAutograd, no code generation):
    loss, weights, optimizer slots and BatchNorm statistics of 5 steps; nothing compiled once
    training started (the warm-ups put back everything they changed)."""
    runs = steps_compiled_and_eager(tmp_path, "aot_eager", 5, **options)
    (eager_losses, eager, _, _), (losses, compiled, graphs, step) = runs[False], runs[True]
    assert "per cell (1 cells, 1 distinct classes), aot_eager backend" in step.summary and "TFRMSProp" in step.summary
    assert graphs == 0 and len(losses) == 5
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-6)
    assert compiled.keys() == eager.keys() and sum(k.endswith(("/ms", "/mom")) for k in eager) > 10
    assert any(k.endswith("running_var") for k in eager)
    for name, value in eager.items():
        torch.testing.assert_close(compiled[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow  # inductor's code generation for one cell class: about a minute on 2 busy cores
def test_n_inductor_compiled_steps_equal_n_eager_steps(tmp_path):
    """20 steps through inductor's generated code against eager: float32 rounding only."""
    runs = steps_compiled_and_eager(tmp_path, "inductor", 20)
    (eager_losses, eager, _, _), (losses, compiled, graphs, _) = runs[False], runs[True]
    assert graphs == 0 and len(losses) == 20
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-4)
    for name, value in eager.items():
        torch.testing.assert_close(compiled[name], value, rtol=1e-3, atol=1e-5, msg=name)


def test_upstream_seconds_rounds_timestamps_to_milliseconds_into_a_float32():
    assert upstream_seconds(0.0, 10.0004, 10.0006) == float(np.float32(0.001))  # 10000 ms to 10001 ms
    assert upstream_seconds(0.0, 5.0, 5.0) == 0.0
    assert upstream_seconds(1.5, 0.0, 0.1) == float(np.float32(np.float32(1.5) + np.float32(0.1)))


def test_ghost_batch_norm_is_the_default_and_can_be_turned_off(tmp_path):
    data = DeviceData.of(synthetic_data(32), "cpu")
    kinds = {}
    for ghost in (True, False):
        trainer = Trainer(INCEPTION, data, TrainConfig(epochs=1, batch_size=32, ghost_bn=ghost), TINY, 0, tmp_path)
        kinds[ghost] = {type(m) for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert TrainConfig().ghost_bn and TrainConfig().ghost_groups == 2
    assert kinds == {True: {recipe.GhostBatchNorm2d}, False: {torch.nn.BatchNorm2d}}


#: (cudnn.allow_tf32, float32 matmul precision, bf16 autocast) each precision must run under.
FLOAT32_MATH = {"fp32": (False, "highest", False), "tf32": (True, "high", False), "bf16": (False, "highest", True)}


@pytest.mark.parametrize("precision", sorted(FLOAT32_MATH))
def test_each_precision_sets_the_float32_math_for_the_run_only(tmp_path, precision):
    data = DeviceData.of(synthetic_data(32), "cpu")
    trainer = Trainer(INCEPTION, data, TrainConfig(epochs=1, batch_size=32, precision=precision), TINY, 0, tmp_path)
    seen = set()

    def record(module, inputs):
        mode = "train" if module.training else "eval"
        math = (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision(), torch.is_autocast_enabled("cpu"))
        seen.add((mode, math))

    trainer.model.register_forward_pre_hook(record)
    before = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    trainer.train_until(2)
    trainer.accuracy_counts()
    assert seen == {("train", FLOAT32_MATH[precision]), ("eval", FLOAT32_MATH[precision])}
    assert (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()) == before


def test_float32_math_is_restored_after_an_error():
    before = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    with pytest.raises(RuntimeError, match="boom"), float32_math("tf32"):
        assert torch.get_float32_matmul_precision() == "high"
        raise RuntimeError("boom")
    assert (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize(
    ("backend", "precision", "tolerance"),
    [("aot_eager", "fp32", (1e-4, 1e-6)), ("inductor", "fp32", (1e-3, 1e-5)), ("aot_eager", "bf16", (5e-2, 5e-3))],
)
def test_n_cuda_graphed_steps_equal_n_eager_steps(tmp_path, backend, precision, tolerance):
    """6 steps of the compiled step captured in a CUDA graph, against the same compiled step
    launched kernel by kernel (the same kernels: in float32 equal but for cuDNN's summation
    order) and against eager steps (within the backend's rounding; in bf16 a last-bit difference
    in a weight flips its bf16 rounding, hence the wide bounds, which a graph that missed an
    update would still fail by far). The learning rate changes at every step (0 at the first):
    a rate recorded into the graph as a constant would fail this."""
    base = TrainConfig(epochs=2, batch_size=32, loss_every=1, precision=precision, channels_last=True)
    runs = {
        name: trained_steps(tmp_path, dataclasses.replace(base, **options), 6, "cuda")
        for name, options in {
            "eager": {"compile_step": False},
            "compiled": {"compile_step": True, "compile_backend": backend, "cuda_graphs": False},
            "graphed": {"compile_step": True, "compile_backend": backend, "cuda_graphs": True},
        }.items()
    }
    losses, graphed, graphs, step = runs["graphed"]
    assert step.graph is not None and "one CUDA graph of the whole step" in step.summary
    assert "no CUDA graphs" in runs["compiled"][3].summary
    assert graphs == 0 and len(losses) == 6
    assert sum(k.endswith(("/ms", "/mom")) for k in graphed) > 10 and any(k.endswith("running_var") for k in graphed)
    same_kernels = (1e-5, 1e-6) if precision == "fp32" else tolerance
    for reference, (rtol, atol) in (("compiled", same_kernels), ("eager", tolerance)):
        np.testing.assert_allclose(losses, runs[reference][0], rtol=rtol, err_msg=reference)
        assert graphed.keys() == runs[reference][1].keys()
        for name, value in runs[reference][1].items():
            torch.testing.assert_close(graphed[name], value, rtol=rtol, atol=atol, msg=f"{reference}: {name}")
    with pytest.raises(ValueError, match=r"captured in a CUDA graph for inputs \(32, 3, 32, 32\)"):
        step(torch.zeros(16, 3, 32, 32, device="cuda"), torch.zeros(16, dtype=torch.int64, device="cuda"))
