"""Fidelity of the training recipe to upstream's (``lib/training_time.py``, ``lib/evaluate.py``,
``lib/model_builder.py``): TF's RMSProp, the cosine-by-step schedule, the loss, evaluation on
9,984 images, ghost BatchNorm, and one tiny training run."""

from __future__ import annotations

import math

import example_cells
import numpy as np
import pytest
import torch
from cifar_files import one_thread, synthetic_data
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from nbcompile.compiler.config import NetworkConfig
from nbcompile.space.spec import ModelSpec
from nbcompile.train import recipe
from nbcompile.train.data import DeviceImages
from nbcompile.train.loop import (
    DeviceData,
    NonFiniteLoss,
    TrainConfig,
    accuracy_count,
    build_network,
    evaluation_steps,
    train_run,
)

INCEPTION = ModelSpec(**example_cells.INCEPTION)
TINY = NetworkConfig(stem_channels=8, num_stacks=1, cells_per_stack=1)
single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


# --- optimizer ----------------------------------------------------------------------------------


def tf_rmsprop_by_hand(w, grads, lrs, decay=0.9, momentum=0.9, eps=1.0):
    """TF's ApplyRMSProp, written out in float64 numpy: ms starts at 1, mom at 0."""
    w, ms, mom = np.array(w, dtype=np.float64), np.ones(len(w)), np.zeros(len(w))
    for g, lr in zip(grads, lrs):
        g = np.asarray(g, dtype=np.float64)
        ms = decay * ms + (1 - decay) * g * g
        mom = momentum * mom + lr * g / np.sqrt(ms + eps)
        w = w - mom
    return w


GRADS = [[0.5, -2.0, 0.0], [1.5, 0.25, -3.0], [-0.75, 1.0, 2.0], [0.1, -0.1, 4.0]]
LRS = [0.0, 0.2, 0.15, 0.05]


def _run_optimizer(make, w0, grads, lrs):
    w = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    lr = torch.tensor(0.0, dtype=torch.float64)
    optimizer = make([w], lr)
    for g, value in zip(grads, lrs):
        lr.fill_(value)
        w.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    return w.detach().numpy()


@pytest.mark.parametrize("foreach", [True, False])
def test_tf_rmsprop_equals_the_hand_computation_over_several_steps(foreach):
    w0 = [1.0, -0.5, 2.0]
    got = _run_optimizer(lambda p, lr: recipe.TFRMSProp(p, lr=lr, foreach=foreach), w0, GRADS, LRS)
    np.testing.assert_allclose(got, tf_rmsprop_by_hand(w0, GRADS, LRS), rtol=0, atol=1e-14)
    # first step at lr 0 leaves w unchanged; one more step by hand: ms = 0.9*(0.9+0.1*.25)+0.1*2.25
    ms = 0.9 * (0.9 + 0.1 * 0.25) + 0.1 * 1.5**2
    assert math.isclose(
        _run_optimizer(lambda p, lr: recipe.TFRMSProp(p, lr=lr), [1.0], [[0.5], [1.5]], [0.0, 0.2])[0],
        1.0 - 0.2 * 1.5 / math.sqrt(ms + 1.0),
        rel_tol=1e-14,
    )


def test_torch_rmsprop_is_not_tf_rmsprop():
    w0 = [1.0, -0.5, 2.0]
    expected = tf_rmsprop_by_hand(w0, GRADS[1:], LRS[1:2] * 3)
    w = nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    optimizer = torch.optim.RMSprop([w], lr=0.2, alpha=0.9, eps=1.0, momentum=0.9)
    for g in GRADS[1:]:
        w.grad = torch.tensor(g, dtype=torch.float64)
        optimizer.step()
    assert not np.allclose(w.detach().numpy(), expected, atol=1e-3)


def test_tf_rmsprop_matches_tensorflow_itself():
    tf = pytest.importorskip("tensorflow")
    w0 = [1.0, -0.5, 2.0]
    var = tf.Variable(np.array(w0, dtype=np.float64))
    # one optimizer with a learning-rate variable, as upstream's schedule feeds it
    lr_var = tf.Variable(0.0, dtype=tf.float64)
    optimizer = tf.compat.v1.train.RMSPropOptimizer(lambda: lr_var, decay=0.9, momentum=0.9, epsilon=1.0)
    for g, lr in zip(GRADS, LRS):
        lr_var.assign(lr)
        optimizer.apply_gradients([(tf.constant(np.array(g, dtype=np.float64)), var)])
    # TF turns the Python hyperparameters into float32 tensors before casting them to float64
    point_nine = float(np.float32(0.9))
    got = _run_optimizer(
        lambda p, lr: recipe.TFRMSProp(p, lr=lr, decay=point_nine, momentum=point_nine), w0, GRADS, LRS
    )
    np.testing.assert_allclose(got, var.numpy(), rtol=0, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-3, 3), min_size=4, max_size=4),
    st.lists(st.lists(st.floats(-10, 10), min_size=4, max_size=4), min_size=1, max_size=5),
    st.lists(st.floats(0, 1), min_size=5, max_size=5),
)
def test_foreach_and_plain_paths_agree_and_lr_zero_moves_nothing(w0, grads, lrs):
    lrs = lrs[: len(grads)]
    a = _run_optimizer(lambda p, lr: recipe.TFRMSProp(p, lr=lr, foreach=True), w0, grads, lrs)
    b = _run_optimizer(lambda p, lr: recipe.TFRMSProp(p, lr=lr, foreach=False), w0, grads, lrs)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a, tf_rmsprop_by_hand(w0, grads, lrs), rtol=1e-10, atol=1e-10)
    frozen = _run_optimizer(lambda p, lr: recipe.TFRMSProp(p, lr=lr), w0, grads, [0.0] * len(grads))
    np.testing.assert_array_equal(frozen, np.array(w0))


# --- schedule -----------------------------------------------------------------------------------


def test_total_steps_per_budget():
    assert [recipe.steps_for(e) for e in (4, 12, 36, 108)] == [625, 1875, 5625, 16875]
    assert evaluation_steps(108, 40_000, 256) == [1, 8437, 16875]
    assert evaluation_steps(4, 40_000, 256) == [1, 312, 625]


def test_cosine_schedule_at_upstream_steps():
    total = 16875
    assert recipe.cosine_lr(0, total) == 0.0
    assert recipe.cosine_lr(1, total) == pytest.approx(0.19999999826706538, rel=1e-12)
    assert recipe.cosine_lr(8437, total) == pytest.approx(0.10000930842266387, rel=1e-12)
    assert recipe.cosine_lr(16874, total) == pytest.approx(1.7329346513328404e-09, rel=1e-9)
    assert recipe.cosine_lr(total, total) == pytest.approx(0.0, abs=1e-15)
    table = recipe.schedule_tensor(total)
    assert table.dtype == torch.float32 and table.shape == (total + 1,)
    assert (
        table[0] == 0 and table[1] == np.float32(0.19999999826706538) and table[8437] == np.float32(0.10000930842266387)
    )


# --- loss ---------------------------------------------------------------------------------------


def test_l2_covers_every_trainable_variable_with_known_values():
    model = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0]]))
        model[0].bias.fill_(3.0)
        model[1].weight.fill_(4.0)  # BN gamma and beta count too
        model[1].bias.fill_(-5.0)
    params = list(model.parameters())
    assert recipe.l2_penalty(params).item() == pytest.approx((1 + 4 + 9 + 16 + 25) / 2)
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.e)) / 2 + 1e-4 * 27.5
    assert recipe.nasbench_loss(logits, labels, params).item() == pytest.approx(expected, rel=1e-6)


# --- ghost batch norm ---------------------------------------------------------------------------


def test_ghost_batch_norm_normalises_each_half_on_its_own():
    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 3 + 1
    ghost = recipe.GhostBatchNorm2d(3, eps=1e-5, momentum=0.003, groups=2)
    halves = [nn.BatchNorm2d(3, eps=1e-5, momentum=0.003) for _ in range(2)]
    with torch.no_grad():
        for module in (ghost, *halves):
            module.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
            module.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    out = ghost(x)
    expected = torch.cat([halves[0](x[:4]), halves[1](x[4:])])
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ghost.running_mean, (halves[0].running_mean + halves[1].running_mean) / 2)
    torch.testing.assert_close(ghost.running_var, (halves[0].running_var + halves[1].running_var) / 2)
    plain = nn.BatchNorm2d(3)
    assert not torch.allclose(plain(x), expected, atol=1e-3)
    ghost.eval()
    torch.testing.assert_close(
        ghost(x), F.batch_norm(x, ghost.running_mean, ghost.running_var, ghost.weight, ghost.bias, False, 0.0, 1e-5)
    )


def test_use_ghost_batch_norm_swaps_every_batch_norm(tmp_path):
    model = build_network(INCEPTION, TINY, tmp_path, seed=0)
    count = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert recipe.use_ghost_batch_norm(model) == count > 0
    assert all(type(m) is not nn.BatchNorm2d for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


# --- evaluation and a run -----------------------------------------------------------------------


class Constant(nn.Module):
    """Always predicts class 3."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(torch.full((x.shape[0],), 3), 10).float() + self.dummy


def test_evaluation_uses_39_batches_of_256_and_counts_exactly():
    labels = torch.tensor([3 if i % 7 == 0 else 1 for i in range(10_000)])
    data = DeviceImages(torch.zeros(10_000, 3, 32, 32, dtype=torch.uint8), labels)
    correct, images = accuracy_count(Constant(), data, 256)
    assert images == 9_984
    assert correct == sum(1 for i in range(9_984) if i % 7 == 0) == 1427


def test_tiny_run_follows_upstreams_schedule(tmp_path):
    data = DeviceData.of(synthetic_data(), "cpu")
    config = TrainConfig(epochs=2, batch_size=32, loss_every=1)
    result = train_run(INCEPTION, data, config, TINY, seed=3, model_dir=tmp_path)
    assert result.steps == 16 and [s for s, _ in result.losses] == list(range(1, 17))
    assert [e.current_epoch for e in result.evaluations] == [0.0, 1.0, 2.0]
    times = [e.training_time for e in result.evaluations]
    assert times[0] == 0.0 < times[1] <= times[2] == result.training_time < result.total_time
    for e in result.evaluations:
        assert e.images == 64
        for value in (e.train_accuracy, e.validation_accuracy, e.test_accuracy):
            assert value == float(np.float32(round(value * 64) / 64))
    again = train_run(INCEPTION, data, config, TINY, seed=3, model_dir=tmp_path)
    assert again.losses == result.losses  # seeded: the same run twice


def test_run_leaves_global_rng_alone(tmp_path):
    data = DeviceData.of(synthetic_data(32), "cpu")
    before = torch.random.get_rng_state()
    train_run(INCEPTION, data, TrainConfig(epochs=1, batch_size=32), TINY, seed=1, model_dir=tmp_path)
    assert torch.equal(before, torch.random.get_rng_state())


def test_diverging_loss_raises(tmp_path):
    data = DeviceData.of(synthetic_data(32), "cpu")
    with pytest.raises(NonFiniteLoss, match="not finite at step"):
        train_run(INCEPTION, data, TrainConfig(epochs=2, batch_size=32, base_lr=1e30, loss_every=1), TINY, 0, tmp_path)


@pytest.mark.parametrize("options", [{"ghost_bn": False}, {"precision": "bf16", "channels_last": True}])
def test_run_options_train(tmp_path, options):
    data = DeviceData.of(synthetic_data(32), "cpu")
    result = train_run(
        INCEPTION, data, TrainConfig(epochs=1, batch_size=32, loss_every=1, **options), TINY, 0, tmp_path
    )
    assert len(result.evaluations) == 3 and all(math.isfinite(v) for _, v in result.losses)


def test_bad_train_config_names_the_field():
    from nbcompile.errors import ConfigError

    with pytest.raises(ConfigError, match="precision must be one of fp32, tf32, bf16") as info:
        TrainConfig(precision="fp16")
    assert info.value.field == "precision"
    with pytest.raises(ConfigError, match="does not split into 2 ghost batches"):
        TrainConfig(batch_size=33)
    assert TrainConfig(batch_size=33, ghost_bn=False).batch_size == 33
    with pytest.raises(ConfigError, match="max_train_seconds must be positive"):
        TrainConfig(max_train_seconds=0.0)
