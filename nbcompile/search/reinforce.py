"""REINFORCE as the NAS-Bench-101 paper ran it: one categorical distribution per parameter.

No controller network: each parameter of the encoding (A by default, or B; both all categorical)
has its own logits, initialised at zero, and the probabilities are optimised directly by the
policy gradient (Williams 1992). After a valid query with validation accuracy ``r``:

* the baseline is an exponential moving average of the rewards with decay 0.9, bias-corrected
  (numerator and denominator both averaged, as the reference's ``ExponentialMovingAverage``), and
  updated with ``r`` *before* the advantage ``r − baseline`` is taken (so the first advantage is 0);
* for every parameter, ``logits += lr · (r − baseline) · (onehot(choice) − softmax(logits))``,
  the gradient of ``log π(choice)``, with learning rate 0.5 (the paper's final setting; the
  reference script's default was 0.1).

A configuration outside the space (or a cell the dataset lacks) earns nothing and changes
nothing: the reference draws again from the same distribution until a query is valid (reward
above 0.001), so only valid queries update the policy. The benchmark still records each invalid
one, free of charge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nbcompile.search.cell_encodings import Encoding, encoding
from nbcompile.search.optimizer import Optimizer, Proposal, SearchContext
from nbcompile.search.protocol import Evaluation
from nbcompile.space.ops import TRAIN_EPOCHS

#: The paper's learning rate.
LEARNING_RATE = 0.5
#: Decay of the reward baseline (the reference script's ``--momentum`` default).
BASELINE_DECAY = 0.9


@dataclass
class MovingAverage:
    """A bias-corrected exponential moving average: ``Σ d^k (1−d) x`` over ``Σ d^k (1−d)``."""

    decay: float
    numerator: float = 0.0
    denominator: float = 0.0

    def update(self, value: float) -> None:
        self.numerator = self.decay * self.numerator + (1 - self.decay) * value
        self.denominator = self.decay * self.denominator + (1 - self.decay)

    @property
    def value(self) -> float:
        return self.numerator / self.denominator


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


class Reinforce(Optimizer):
    """REINFORCE over an all-categorical encoding; ``ask`` samples, ``tell`` takes one gradient step."""

    def __init__(
        self,
        cell_encoding: Encoding,
        rng: np.random.Generator,
        epochs: int = TRAIN_EPOCHS,
        learning_rate: float = LEARNING_RATE,
        baseline_decay: float = BASELINE_DECAY,
    ) -> None:
        if not cell_encoding.categorical:
            raise ValueError(
                f"REINFORCE needs an encoding of categorical parameters (A or B); encoding {cell_encoding.name} "
                "has numeric ones"
            )
        self.encoding = cell_encoding
        self.rng = rng
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.baseline = MovingAverage(baseline_decay)
        self.logits = [np.zeros(len(p.choices)) for p in cell_encoding.parameters]

    def probabilities(self) -> list[np.ndarray]:
        """The current distribution of each parameter."""
        return [softmax(logits) for logits in self.logits]

    def ask(self) -> Proposal:
        choices = tuple(int(self.rng.choice(len(p), p=p)) for p in self.probabilities())
        config = {p.name: p.choices[c] for p, c in zip(self.encoding.parameters, choices)}
        return Proposal(self.encoding.decode(config), self.epochs, choices)

    def tell(self, proposal: Proposal, evaluation: Evaluation) -> None:
        if evaluation.valid:
            self.update(proposal.ticket, evaluation.validation_accuracy)

    def update(self, choices: Sequence[int], reward: float) -> float:
        """One policy-gradient step for the sample ``choices`` (one index per parameter); returns the advantage."""
        self.baseline.update(reward)
        advantage = reward - self.baseline.value
        for logits, probabilities, choice in zip(self.logits, self.probabilities(), choices):
            gradient = -probabilities
            gradient[choice] += 1.0
            logits += self.learning_rate * advantage * gradient
        return advantage


def reinforce(context: SearchContext) -> Optimizer:
    """REINFORCE with the paper's learning rate over the search's encoding (A or B)."""
    options = context.options
    return Reinforce(encoding(options.encoding), np.random.default_rng(context.seed), options.epochs)
