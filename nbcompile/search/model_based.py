"""The model-based optimizers of the NAS-Bench-101 paper's comparison, on maintained libraries.

The paper's scripts ran SMAC 0.x, hyperopt and hpbandster, none of which installs on current
Python. Here (the ``search`` extra):

* **TPE**: Optuna's ``TPESampler`` with hyperopt's defaults (20 random startup trials, 24
  expected-improvement candidates, γ(n) = min(⌈0.25·√n⌉, 25), the prior with weight 1, the magic
  clip, no endpoints, independent parameters), over a fixed space: categorical parameters for
  encodings A and B, a float per edge weight and an integer ``num_edges`` for C.
* **SMAC**: SMAC3's random-forest Bayesian optimisation (``HyperparameterOptimizationFacade``)
  with the paper's settings: 33 % random configurations interleaved, 5 trees, one evaluation per
  configuration (``deterministic=True``), one random initial configuration (the reference's
  ``initial_incumbent: RANDOM``). Its surrogate is retrained every
  :attr:`~nbcompile.search.optimizer.SearchOptions.smac_retrain_after` configurations (a bound on
  its cost; see the search-algorithms guide).
* **Hyperband** and **BOHB**: SMAC3's ``HyperbandFacade`` (random sampling) and
  ``MultiFidelityFacade`` (random-forest BO, 0 % random configurations as the paper's BOHB) with
  η = 3 over 4…108 epochs: brackets of 27×4, 9×12, 3×36, 1×108 epochs; 12×12, 4×36, 1×108;
  6×36, 2×108; 4×108 (:func:`hyperband_brackets`). DEHB is not used: it pins ``numpy<2``,
  which the project's TensorFlow extra cannot live with. SMAC3's BOHB-like facade models with a
  random forest where BOHB used kernel densities, so the paper's BOHB settings (4 samples,
  minimal bandwidth 0.3, bandwidth factor 3) have no counterpart.

Every optimizer minimises the validation error ``1 − validation accuracy``; a configuration
outside the space (or a cell the dataset lacks) is told error 1, as the reference's benchmark
returns it. SMAC's files go to a temporary folder, removed once the optimizer is built (it
writes nothing after, since it is never asked to save), and its log and Optuna's are quiet.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

from nbcompile.search.cell_encodings import Encoding, Parameter, encoding
from nbcompile.search.optimizer import Optimizer, Proposal, SearchContext
from nbcompile.search.protocol import Evaluation
from nbcompile.space.ops import TRAIN_EPOCHS

#: hyperopt's TPE defaults (v0.1.2) that differ from Optuna's: 20 random startup trials (Optuna: 10)
#: and γ (:func:`hyperopt_gamma`). The rest already are hyperopt's: 24 expected-improvement
#: candidates, the prior with weight 1, the magic clip, no endpoints, independent parameters.
TPE_STARTUP_TRIALS = 20
TPE_EI_CANDIDATES = 24
#: The paper's SMAC: fraction of random configurations, trees of the random forest.
SMAC_RANDOM_FRACTION = 0.33
SMAC_TREES = 5
#: The paper's BOHB samples no random configuration; its forest has SMAC3's default 10 trees.
BOHB_RANDOM_FRACTION = 0.0
BOHB_TREES = 10
#: Hyperband's η and its budgets (epochs), as the paper ran HB and BOHB.
ETA = 3
MIN_EPOCHS, MAX_EPOCHS = 4, TRAIN_EPOCHS
MULTI_FIDELITY_EPOCHS = (4, 12, 36, 108)
#: SMAC3's default: draws of an already seen configuration before it samples at random.
SMAC_RETRIES = 16
#: An unbounded number of trials for SMAC's scenario: the benchmark's budget ends the trial.
_UNBOUNDED_TRIALS = 2**31 - 1


def hyperopt_gamma(observations: int) -> int:
    """hyperopt's TPE: the best ⌈0.25·√n⌉ observations (at most 25) make the "good" density."""
    return min(math.ceil(0.25 * math.sqrt(observations)), 25)


def validation_error(evaluation: Evaluation) -> float:
    """What the optimizers minimise: 1 − validation accuracy (1 for an invalid configuration)."""
    return 1.0 - evaluation.validation_accuracy if evaluation.valid else 1.0


@contextlib.contextmanager
def quiet(name: str) -> Iterator[None]:
    """The library logger ``name`` at ERROR for the block, then as it was."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


# --- TPE (Optuna) ----------------------------------------------------------------------------------
def _distribution(parameter: Parameter) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if parameter.kind == "categorical":
        return CategoricalDistribution(parameter.choices)
    if parameter.kind == "float":
        return FloatDistribution(parameter.lower, parameter.upper)
    return IntDistribution(int(parameter.lower), int(parameter.upper))


class OptunaTPE(Optimizer):
    """Optuna's TPE sampler with hyperopt's defaults, asked and told one trial at a time."""

    def __init__(self, cell_encoding: Encoding, seed: int, epochs: int = TRAIN_EPOCHS) -> None:
        import optuna

        self.encoding = cell_encoding
        self.epochs = epochs
        with warnings.catch_warnings():  # Optuna 4.9+ deprecates gamma (to go in Optuna 6)
            warnings.simplefilter("ignore", FutureWarning)
            sampler = optuna.samplers.TPESampler(
                n_startup_trials=TPE_STARTUP_TRIALS,
                n_ei_candidates=TPE_EI_CANDIDATES,
                gamma=hyperopt_gamma,
                seed=seed,
            )
        with quiet("optuna"):
            self.study = optuna.create_study(direction="minimize", sampler=sampler)
        self.distributions = {p.name: _distribution(p) for p in cell_encoding.parameters}

    def ask(self) -> Proposal:
        with quiet("optuna"):
            trial = self.study.ask(self.distributions)
        return Proposal(self.encoding.decode(trial.params), self.epochs, trial)

    def tell(self, proposal: Proposal, evaluation: Evaluation) -> None:
        with quiet("optuna"):
            self.study.tell(proposal.ticket, validation_error(evaluation))


def tpe(context: SearchContext) -> Optimizer:
    """TPE (Optuna, hyperopt's defaults) over the search's encoding."""
    return OptunaTPE(encoding(context.options.encoding), context.seed, context.options.epochs)


# --- SMAC3: SMAC, Hyperband, BOHB ----------------------------------------------------------------
def hyperband_brackets(
    min_epochs: int = MIN_EPOCHS, max_epochs: int = MAX_EPOCHS, eta: int = ETA
) -> list[list[tuple[int, float]]]:
    """SMAC3's Hyperband brackets: per bracket, (configurations, budget) per stage, budgets as SMAC computes them."""
    from smac.intensifier.hyperband_utils import determine_HB

    plan = determine_HB(min_budget=min_epochs, max_budget=max_epochs, eta=eta)
    return [
        [(int(n), float(b)) for n, b in zip(plan["n_configs_in_stage"][i], plan["budgets_in_stage"][i])]
        for i in sorted(plan["n_configs_in_stage"])
    ]


def epochs_of(budget: float, allowed: tuple[int, ...] = MULTI_FIDELITY_EPOCHS) -> int:
    """The epoch budget SMAC's float ``budget`` stands for; RuntimeError unless it is one of ``allowed``."""
    epochs = round(budget)
    if epochs not in allowed or abs(budget - epochs) > 1e-6:
        raise RuntimeError(
            f"SMAC asked for a budget of {budget!r} epochs; the dataset has runs at {', '.join(map(str, allowed))} only"
        )
    return epochs


class SmacOptimizer(Optimizer):
    """A SMAC3 facade asked and told one trial at a time; multi-fidelity when its trials carry budgets."""

    def __init__(self, facade: Any, cell_encoding: Encoding, epochs: int = TRAIN_EPOCHS) -> None:
        self.facade = facade
        self.encoding = cell_encoding
        self.epochs = epochs

    def ask(self) -> Proposal:
        with quiet("smac"):
            info = self.facade.ask()
        epochs = self.epochs if info.budget is None else epochs_of(info.budget)
        return Proposal(self.encoding.decode(dict(info.config)), epochs, info)

    def tell(self, proposal: Proposal, evaluation: Evaluation) -> None:
        from smac.runhistory.dataclasses import TrialValue

        with quiet("smac"):
            self.facade.tell(proposal.ticket, TrialValue(cost=validation_error(evaluation)), save=False)


def _random_forest(space: Any, seed: int, trees: int) -> Any:
    """SMAC's random forest as its facade builds it, on one thread, without the leaf cap.

    SMAC caps trees at 2^20 leaves, which never binds (a leaf holds at least one observation),
    but scikit-learn allocates node storage for the cap (about 0.5 s per tree on a 2-core CPU):
    without it the trees are grown depth-first, the same kind of tree. One thread (SMAC's default
    is every core), as the trials of a study run in processes of their own.

    On one thread the trees predict in a plain loop: SMAC3 dispatches each tree's prediction
    through joblib even then, and its local search predicts thousands of small batches per
    retraining (a sixth of a BOHB trial's time went to the dispatch). The loop is the one SMAC3's
    own comment gives as equivalent; the predictions are the same numbers."""
    import numpy as np
    from smac.model.random_forest import RandomForest
    from smac.model.random_forest.random_forest import EPMRandomForest

    class LoopedForest(EPMRandomForest):
        def all_trees_pred(self, X: np.ndarray) -> np.ndarray:
            if self.n_outputs_ > 1:
                return super().all_trees_pred(X)
            X = self._validate_X_predict(X)
            if X.ndim == 1:
                X = X[None, :]
            predictions = np.zeros((X.shape[0], self.n_estimators), dtype=np.float64)
            for index, tree in enumerate(self.estimators_):
                predictions[:, index] = tree.predict(X, check_input=False)
            return predictions

    class LoopedRandomForest(RandomForest):
        def _train(self, X: np.ndarray, y: np.ndarray) -> LoopedRandomForest:
            self._rf = LoopedForest(**self._rf_opts)
            self._rf.fit(self._impute_inactive(X), y.flatten())
            return self

    return LoopedRandomForest(
        space,
        log_y=True,
        n_trees=trees,
        ratio_features=1.0,
        min_samples_split=2,
        min_samples_leaf=1,
        max_depth=2**20,
        max_leaf_nodes=None,
        bootstrapping=True,
        seed=seed,
        n_jobs=1,
    )


def _config_selector(scenario: Any, retrain_after: int) -> Any:
    """SMAC3's configuration selector, retraining after ``retrain_after`` configurations, that
    predicts the incumbent's cost in one batch (SMAC3 predicts each evaluated configuration on
    its own, seconds per retraining after a few hundred; the minimum, first of ties, is the same)."""
    import numpy as np
    from smac.main.config_selector import ConfigSelector

    class ConfigList(list):
        """SMAC3's list of processed configurations, with membership in constant time (SMAC3 tests
        it for every challenger by comparing configurations one by one: most of a trial's time
        after a few hundred configurations). Within one space, equal vectors are equal configurations."""

        def __init__(self, configs: Any = ()) -> None:
            super().__init__(configs)
            self._keys = {config.get_array().tobytes() for config in self}

        def __contains__(self, config: Any) -> bool:
            return config.get_array().tobytes() in self._keys

        def append(self, config: Any) -> None:
            super().append(config)
            self._keys.add(config.get_array().tobytes())

    class BatchedConfigSelector(ConfigSelector):
        @property
        def _processed_configs(self) -> ConfigList:
            return self._processed

        @_processed_configs.setter
        def _processed_configs(self, configs: Any) -> None:
            self._processed = ConfigList(configs)

        def _get_x_best(self, X: np.ndarray) -> tuple[np.ndarray, float]:
            if not self._predict_x_best:
                return super()._get_x_best(X)
            means = self._model.predict_marginalized(X)[0][:, 0]
            best = int(np.argmin(means))
            return X[best], means[best]

    return BatchedConfigSelector(scenario, retrain_after=retrain_after, max_new_config_tries=SMAC_RETRIES)


def _intensifier(scenario: Any) -> Any:
    """SMAC3's intensifier with one evaluation per configuration, that tests a configuration for
    rejection by its id (SMAC3 compares it with every rejected configuration, one by one, at every
    ask: quadratic in the trial's length). The same configurations are rejected."""
    from smac.intensifier.intensifier import Intensifier

    class RejectedConfigs(list):
        """SMAC3's list of rejected configurations, with membership by runhistory id."""

        def __init__(self, configs: list[Any], ids: set[int], config_ids: dict[Any, int]) -> None:
            super().__init__(configs)
            self._ids, self._config_ids = ids, config_ids

        def __contains__(self, config: Any) -> bool:
            return self._config_ids.get(config) in self._ids

    class IdIntensifier(Intensifier):
        def get_rejected_configs(self) -> RejectedConfigs:
            history = self.runhistory
            ids = self._rejected_config_ids
            return RejectedConfigs([history.ids_config[i] for i in ids], set(ids), history.config_ids)

    return IdIntensifier(scenario, max_config_calls=1)


def _fold_objective_bounds(runhistory: Any) -> None:
    """Make ``runhistory`` keep its objective bounds as trials are added, instead of recomputing
    them from every trial at every addition as SMAC3 does (two additions per query, running then
    finished: quadratic in a trial's length; 5,000 queries' additions cost about 110 s).

    A finished trial's cost can only widen the bounds, so each one is folded in as it comes; an
    addition that replaces a successful trial, or one made before the first bounds exist,
    recomputes them as SMAC3 does. The bounds are the same numbers. SMAC3's facade builds its
    run history itself and offers no hook, so only this instance is given the subclass."""
    import numpy as np
    from smac.runhistory import RunHistory
    from smac.runhistory.enumerations import StatusType

    class FoldedBoundsRunHistory(RunHistory):
        def _add(self, k: Any, v: Any, status: Any) -> None:
            previous = self._data.get(k)
            replaces_success = previous is not None and previous.status == StatusType.SUCCESS
            self._to_fold = None if replaces_success or not self._objective_bounds else v
            super()._add(k, v, status)

        def _update_objective_bounds(self) -> None:
            added, self._to_fold = getattr(self, "_to_fold", None), None
            if added is None:
                super()._update_objective_bounds()
            elif added.status == StatusType.SUCCESS:
                costs = np.atleast_1d(np.asarray(added.cost, dtype=float))
                self._objective_bounds = [
                    (np.minimum(low, cost), np.maximum(high, cost))
                    for (low, high), cost in zip(self._objective_bounds, costs, strict=True)
                ]

    if type(runhistory) is not RunHistory:
        raise TypeError(f"expected SMAC3's RunHistory, got {type(runhistory).__name__}")
    runhistory.__class__ = FoldedBoundsRunHistory


def _acquisition_maximizer(scenario: Any, challengers: int) -> Any:
    """SMAC3's acquisition maximizer (``challengers`` random configurations sorted by expected
    improvement, then a local search from the best 10 and the predicted-best evaluated ones),
    with the local search started in an order fixed by the configurations' values. SMAC3 starts
    it in the order of a set of configurations, whose hashes are of strings, so a seeded trial
    would differ from one Python process to the next (``PYTHONHASHSEED``)."""
    from smac.acquisition.maximizer import LocalAndSortedRandomSearch, LocalSearch

    class OrderedLocalSearch(LocalSearch):
        def _get_initial_points(self, *args: Any, **kwargs: Any) -> list[Any]:
            points = super()._get_initial_points(*args, **kwargs)
            return sorted(points, key=lambda config: config.get_array().tobytes())

    class OrderedLocalAndSortedRandomSearch(LocalAndSortedRandomSearch):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # SMAC3's own local search, with its defaults; the facade sets the acquisition function
            self._local_search = OrderedLocalSearch(scenario.configspace, seed=scenario.seed)

    return OrderedLocalAndSortedRandomSearch(scenario.configspace, challengers=challengers, seed=scenario.seed)


def _smac_facade(context: SearchContext, kind: str) -> SmacOptimizer:
    """A SMAC3 facade for one trial: ``kind`` is smac, hyperband or bohb."""
    from smac import HyperbandFacade, HyperparameterOptimizationFacade, MultiFidelityFacade, Scenario
    from smac.initial_design import RandomInitialDesign

    options = context.options
    cell_encoding = encoding(options.encoding)
    space = cell_encoding.configuration_space()
    multi_fidelity = kind != "smac"
    if multi_fidelity:
        for bracket in hyperband_brackets():
            for _, budget in bracket:
                epochs_of(budget)
    folder = tempfile.mkdtemp(prefix="nbcompile-smac-")
    try:
        with quiet("smac"):
            scenario = Scenario(
                space,
                deterministic=True,
                n_trials=_UNBOUNDED_TRIALS,
                seed=context.seed,
                output_directory=folder,
                **({"min_budget": MIN_EPOCHS, "max_budget": MAX_EPOCHS} if multi_fidelity else {}),
            )
            facade_class = {
                "smac": HyperparameterOptimizationFacade,
                "hyperband": HyperbandFacade,
                "bohb": MultiFidelityFacade,
            }[kind]
            components: dict[str, Any] = {
                "initial_design": RandomInitialDesign(scenario, n_configs=0),
                "config_selector": _config_selector(scenario, options.smac_retrain_after),
            }
            if kind == "smac":
                components.update(
                    model=_random_forest(space, context.seed, SMAC_TREES),
                    random_design=facade_class.get_random_design(scenario, probability=SMAC_RANDOM_FRACTION),
                    intensifier=_intensifier(scenario),
                )
            else:
                components["intensifier"] = facade_class.get_intensifier(scenario, eta=ETA)
            if kind == "bohb":
                components.update(
                    model=_random_forest(space, context.seed, BOHB_TREES),
                    random_design=facade_class.get_random_design(scenario, probability=BOHB_RANDOM_FRACTION),
                )
            if kind in ("smac", "bohb"):
                components["acquisition_maximizer"] = _acquisition_maximizer(scenario, options.smac_challengers)
            facade = facade_class(scenario, None, logging_level=False, overwrite=True, **components)
            _fold_objective_bounds(facade.runhistory)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return SmacOptimizer(facade, cell_encoding, options.epochs)


def smac(context: SearchContext) -> Optimizer:
    """SMAC (random-forest BO, the paper's settings) over the search's encoding."""
    return _smac_facade(context, "smac")


def hyperband(context: SearchContext) -> Optimizer:
    """Hyperband (η = 3, 4…108 epochs) over the search's encoding."""
    return _smac_facade(context, "hyperband")


def bohb(context: SearchContext) -> Optimizer:
    """SMAC3's BOHB-like multi-fidelity BO (random forest, Hyperband η = 3, 4…108 epochs)."""
    return _smac_facade(context, "bohb")
