"""Upstream's training protocol around the recipe: how ``training_time`` is counted (never the
compilation or the evaluations), the ``train_seconds`` stop, ghost BatchNorm by default, and the
float32 math of each precision, set for a run only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cifar_files import one_thread
from test_train import INCEPTION, TINY, synthetic_data

from nbcompile.runtime.device import float32_math
from nbcompile.train import loop, recipe
from nbcompile.train.loop import DeviceData, TrainConfig, Trainer, evaluation_steps, train_run, upstream_seconds

single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)

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

    def slow_compile(step, **_):
        calls = []

        def compiled(*args):
            if len(calls) < 2:
                fake.now += COMPILE_SECONDS
            calls.append(None)
            return step(*args)

        return compiled

    real_step, real_count = loop.make_train_step, loop.accuracy_count

    def timed_step(*args, **kwargs):
        step = real_step(*args, **kwargs)

        def one(*batch):
            fake.now += STEP_SECONDS
            return step(*batch)

        return one

    def timed_count(*args, **kwargs):
        fake.now += EVALUATION_SECONDS
        return real_count(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", slow_compile)
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


def test_a_compiled_step_is_warmed_up_before_training_and_then_trains_as_the_eager_one(tmp_path, monkeypatch):
    """Dynamo's own ``eager`` backend (no code generation): what compiles and recompiles is
    dynamo's tracing, which this counts; the warm-up leaves no trace in the run."""
    from torch._dynamo.utils import counters

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda function, **_: real_compile(function, backend="eager"))
    data = DeviceData.of(synthetic_data(), "cpu")
    runs = {}
    for compile_step in (False, True):
        config = TrainConfig(epochs=2, batch_size=32, loss_every=1, compile_step=compile_step)
        trainer = Trainer(INCEPTION, data, config, TINY, 3, tmp_path / str(compile_step))
        graphs = counters["stats"]["unique_graphs"]
        trainer.train_until(5)
        assert counters["stats"]["unique_graphs"] == graphs  # nothing compiled once training started
        runs[compile_step] = [float(v) for _, v in trainer.losses], snapshot(trainer)
    assert runs[True][0] == runs[False][0] and len(runs[True][0]) == 5
    assert runs[True][1].keys() == runs[False][1].keys() and any(k.endswith("/ms") for k in runs[True][1])
    for name, value in runs[False][1].items():
        torch.testing.assert_close(runs[True][1][name], value, rtol=0, atol=0, msg=name)


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
