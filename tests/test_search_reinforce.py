"""REINFORCE (nbcompile.search.reinforce): the update against a policy gradient worked by hand and
against finite differences of log-probabilities, the baseline, and invalid queries left out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nbcompile.search.cell_encodings import ENCODING, Encoding, Parameter
from nbcompile.search.protocol import Evaluation
from nbcompile.search.reinforce import MovingAverage, Reinforce

#: Two parameters of 2 and 3 choices; the decoder is never called by update().
TINY = Encoding("tiny", (Parameter("x", "categorical", (0, 1)), Parameter("y", "categorical", ("a", "b", "c"))), dict)


def test_first_step_has_no_advantage_and_second_matches_the_hand_computation() -> None:
    agent = Reinforce(TINY, np.random.default_rng(0))
    assert agent.update((1, 2), 0.8) == 0.0  # the baseline already holds the reward
    assert all(np.array_equal(logits, np.zeros_like(logits)) for logits in agent.logits)
    # baseline = (0.9·0.08 + 0.1·0.5) / (0.9·0.1 + 0.1) = 0.122 / 0.19
    advantage = agent.update((0, 2), 0.5)
    assert advantage == pytest.approx(0.5 - 0.122 / 0.19)
    # logits += 0.5 · advantage · (onehot − uniform)
    step = 0.5 * (0.5 - 0.122 / 0.19)
    np.testing.assert_allclose(agent.logits[0], [step * 0.5, -step * 0.5])
    np.testing.assert_allclose(agent.logits[1], [-step / 3, -step / 3, step * 2 / 3])


def log_probability(logits: list[np.ndarray], choices: tuple[int, ...]) -> float:
    """log π(choices) = Σ log softmax, written out with logsumexp."""
    return sum(float(x[c] - np.log(np.exp(x).sum())) for x, c in zip(logits, choices))


def test_the_update_is_the_gradient_of_the_log_probability() -> None:
    """From non-uniform logits: the step equals lr · advantage · ∇ log π, by central differences."""
    agent = Reinforce(TINY, np.random.default_rng(0))
    agent.logits = [np.array([0.3, -0.2]), np.array([1.0, -0.5, 0.25])]
    agent.baseline = MovingAverage(0.9, numerator=0.06, denominator=0.1)  # baseline 0.6
    before = [x.copy() for x in agent.logits]
    choices = (1, 0)
    advantage = agent.update(choices, 0.9)
    assert advantage == pytest.approx(0.9 - (0.9 * 0.06 + 0.1 * 0.9) / (0.9 * 0.1 + 0.1))
    h = 1e-6
    for p, logits in enumerate(before):
        for j in range(len(logits)):
            plus = [x.copy() for x in before]
            minus = [x.copy() for x in before]
            plus[p][j] += h
            minus[p][j] -= h
            gradient = (log_probability(plus, choices) - log_probability(minus, choices)) / (2 * h)
            assert agent.logits[p][j] - before[p][j] == pytest.approx(0.5 * advantage * gradient, abs=1e-8)


def test_the_baseline_is_the_bias_corrected_average() -> None:
    average = MovingAverage(0.9)
    rewards = [0.5, 0.7, 0.6, 0.9]
    for r in rewards:
        average.update(r)
    weights = [0.9**k for k in range(len(rewards))][::-1]
    assert average.value == pytest.approx(sum(w * r for w, r in zip(weights, rewards)) / sum(weights))


def _evaluation(valid: bool, accuracy: float) -> Evaluation:
    return Evaluation("reinforce", 0, 0, "h" if valid else "", 108, 0, accuracy, math.nan, 1.0, 1.0, valid)


def test_invalid_queries_change_nothing_and_valid_ones_learn() -> None:
    agent = Reinforce(ENCODING["A"], np.random.default_rng(3))
    proposal = agent.ask()
    assert len(proposal.ticket) == 26
    agent.tell(proposal, _evaluation(False, 0.0))
    assert agent.baseline.denominator == 0.0 and all(not x.any() for x in agent.logits)
    agent.tell(proposal, _evaluation(True, 0.9))
    agent.tell(agent.ask(), _evaluation(True, 0.95))
    assert any(x.any() for x in agent.logits)


def test_a_good_choice_becomes_likelier() -> None:
    """Reward 1 for edge_0 = 1, 0.5 otherwise: its probability climbs well above one half."""
    agent = Reinforce(ENCODING["A"], np.random.default_rng(7))
    index = [p.name for p in ENCODING["A"].parameters].index("edge_0")
    for _ in range(200):
        choices = agent.ask().ticket
        agent.update(choices, 1.0 if choices[index] == 1 else 0.5)
    assert agent.probabilities()[index][1] > 0.9


def test_encoding_c_is_refused() -> None:
    with pytest.raises(ValueError, match=r"categorical.*encoding C"):
        Reinforce(ENCODING["C"], np.random.default_rng(0))
