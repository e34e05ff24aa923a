"""Landscapes of synthetic fixtures (nbcompile.synthetic.landscape): the hashed one writes the bytes
it always wrote; the structured one is deterministic, follows the cell's structure as designed
(invariants of its noise-free part, hand-worked traits, and the stored accuracies read back), has
the intended correlations between budgets (Spearman from numpy ranks of the records' accuracies),
and lets regularized evolution beat random search where the hashed one does not."""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np
import pytest
from cli_runner import assert_one_line_error, invoke
from dataset_files import INCEPTION_CELL, records_in
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import valid_specs

from nbcompile.compiler.lower import lower
from nbcompile.errors import DatasetError
from nbcompile.nasbench import NASBench
from nbcompile.nasbench.writer import encode_record
from nbcompile.search import Budget, SearchOptions, random_search, regularized_evolution
from nbcompile.space.enumeration import EnumeratedCell, enumerate_cells, sample_cells
from nbcompile.space.ops import CONV1X1, CONV3X3, MAXPOOL3X3
from nbcompile.space.spec import ModelSpec
from nbcompile.synthetic.fixture import FULL, fixture_records, write_fixture
from nbcompile.synthetic.landscape import StructuredLandscape, cell_traits

STRUCTURED = StructuredLandscape()


def _traits_of(spec: ModelSpec):
    return cell_traits(spec.pruned_matrix, spec.pruned_ops, lower(spec).trainable_parameters)


def _swapped(spec: ModelSpec, old: str, new: str, position: int) -> ModelSpec:
    """``spec`` (pruned) with the ``position``-th vertex holding ``old`` given ``new`` instead."""
    ops = list(spec.pruned_ops)
    vertex = [v for v, op in enumerate(ops) if op == old][position]
    ops[vertex] = new
    return ModelSpec([list(row) for row in spec.pruned_matrix], ops)


def _cell_of(record) -> EnumeratedCell:
    """The cell a record holds."""
    size = record.num_vertices
    rows = [record.adjacency[i * size : (i + 1) * size] for i in range(size)]
    return EnumeratedCell(record.module_hash, tuple(tuple(int(c) for c in row) for row in rows), record.operations)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties given their mean rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, tie_group = np.unique(values, return_inverse=True)
    return (np.bincount(tie_group, ranks) / np.bincount(tie_group))[tie_group]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


# --- the hashed landscape is today's fixture --------------------------------------------------------
def test_hashed_landscape_writes_the_bytes_it_always_wrote() -> None:
    cells = list(enumerate_cells(max_vertices=4, workers=1))
    records = list(fixture_records(cells, FULL))
    assert records == list(fixture_records(cells, FULL, landscape="hashed"))
    # the SHA-256 of these 91 cells' 1,092 records as the writer made them before landscapes existed
    digest = hashlib.sha256(b"".join(encode_record(r) for r in records)).hexdigest()
    assert digest == "274e664c9ec8a86c02905e0cde026bace71f7bf32629ee93bf31dc6d4824b263"


def test_unknown_landscape_is_refused_before_any_file(tmp_path) -> None:
    cells = list(enumerate_cells(max_vertices=3, workers=1))
    with pytest.raises(DatasetError, match="unknown landscape 'smooth'; the landscapes are hashed, structured"):
        write_fixture(tmp_path / "x_synthetic.tfrecord", cells, landscape="smooth")
    with pytest.raises(DatasetError, match="unknown landscape"):
        next(fixture_records(cells, landscape="smooth"))
    assert not list(tmp_path.iterdir())


# --- the structured landscape: deterministic, only accuracies change ---------------------------------
def test_structured_fixture_is_deterministic_and_changes_only_accuracies(tmp_path, cells) -> None:
    cells = cells[:13]  # the Inception-like cell and 12 cells spread over the space
    one, two = tmp_path / "one_synthetic.tfrecord", tmp_path / "two_synthetic.tfrecord"
    assert write_fixture(one, cells, FULL, landscape="structured") == 13 * 4 * 3
    write_fixture(two, cells, FULL, workers=2, landscape="structured")
    assert one.read_bytes() == two.read_bytes()
    hashed = list(fixture_records(cells, FULL))
    structured = records_in(one)
    assert len(structured) == len(hashed)
    for s, h in zip(structured, hashed):
        assert (s.module_hash, s.epochs, s.adjacency, s.operations) == (
            h.module_hash,
            h.epochs,
            h.adjacency,
            h.operations,
        )
        assert s.metrics.trainable_parameters == h.metrics.trainable_parameters
        assert s.metrics.total_time == pytest.approx(h.metrics.total_time)  # training times: flops-based, shared
        assert [e.training_time for e in s.metrics.evaluation_data] == [
            pytest.approx(e.training_time) for e in h.metrics.evaluation_data
        ]
    assert [s.metrics.evaluation_data[2].validation_accuracy for s in structured] != [
        h.metrics.evaluation_data[2].validation_accuracy for h in hashed
    ]


# --- structure, as designed --------------------------------------------------------------------------
def test_traits_of_hand_worked_cells() -> None:
    # the Inception-like cell as stored: input → 3×3, 1×1, 3×3 → output and input → max-pool → 3×3 → output
    inception = cell_traits(INCEPTION_CELL.matrix, INCEPTION_CELL.ops, 2_694_282)
    assert (inception.conv3x3, inception.conv1x1, inception.maxpool) == (3, 1, 1)
    assert (inception.depth, inception.width, inception.interior) == (3, 4, 5)
    direct = cell_traits(((0, 1), (0, 0)), ("input", "output"), 882_570)
    assert (direct.depth, direct.width, direct.interior) == (1, 1, 0)
    # a chain input → 1×1 → max-pool → output plus a skip input → output: longest path 3, two branches
    chain = cell_traits(
        ((0, 1, 0, 1), (0, 0, 1, 0), (0, 0, 0, 1), (0, 0, 0, 0)), ("input", CONV1X1, MAXPOOL3X3, "output"), 1
    )
    assert (chain.conv1x1, chain.maxpool, chain.depth, chain.width) == (1, 1, 3, 2)


def test_noise_free_accuracy_is_the_documented_formula() -> None:
    """Recomputed from the formula in the docs, for the Inception-like cell at 108 and 4 epochs."""
    traits = cell_traits(INCEPTION_CELL.matrix, INCEPTION_CELL.ops, 2_694_282)
    c = STRUCTURED
    # at 108 epochs t = 1, so every early term vanishes
    at_108 = (
        c.base
        - 3 * c.conv3x3
        - 1 * c.conv1x1
        + 1 * c.maxpool
        - c.depth * 3
        - c.width * 3
        - c.log_parameters * math.log(2.694282)
        + c.maxpool_share * (1 / 5) ** 3
    )
    assert STRUCTURED.noise_free_accuracy(traits, 108) == pytest.approx(1 - math.exp(at_108), rel=1e-12)
    # at 4 epochs t = 0: the early error is whole, depth counts against, parameters slightly against
    at_4 = (
        c.base
        + c.early_error
        - 3 * c.conv3x3
        - 1 * c.conv1x1
        + 1 * c.maxpool
        + c.depth * 3
        - c.width * 3
        + c.log_parameters * c.early_parameters * math.log(2.694282)
        + c.maxpool_share * (1 / 5) ** 3
    )
    assert STRUCTURED.noise_free_accuracy(traits, 4) == pytest.approx(1 - math.exp(at_4), rel=1e-12)
    # the defaults, worked by hand: log error −2.4841 at 108 epochs
    assert StructuredLandscape().noise_free_accuracy(traits, 108) == pytest.approx(0.91660, abs=1e-5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=valid_specs(), data=st.data())
def test_a_maxpool_made_conv3x3_raises_the_noise_free_accuracy_at_every_budget(spec, data) -> None:
    """Invariant of the noise-free part: more conv3x3 and fewer max-pools (and so more parameters) is better."""
    pools = spec.pruned_ops.count(MAXPOOL3X3)
    assume(pools > 0)
    swapped = _swapped(spec, MAXPOOL3X3, CONV3X3, data.draw(st.integers(0, pools - 1)))
    before, after = _traits_of(spec), _traits_of(swapped)
    assert after.parameters > before.parameters
    for epochs in FULL:
        assert STRUCTURED.noise_free_accuracy(after, epochs) > STRUCTURED.noise_free_accuracy(before, epochs)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=valid_specs(), data=st.data())
def test_a_conv1x1_made_conv3x3_raises_the_noise_free_accuracy_at_long_budgets(spec, data) -> None:
    """At 36 and 108 epochs parameters help; at 4 epochs they cost a little (not checked)."""
    convs = spec.pruned_ops.count(CONV1X1)
    assume(convs > 0)
    swapped = _swapped(spec, CONV1X1, CONV3X3, data.draw(st.integers(0, convs - 1)))
    before, after = _traits_of(spec), _traits_of(swapped)
    for epochs in (36, 108):
        assert STRUCTURED.noise_free_accuracy(after, epochs) > STRUCTURED.noise_free_accuracy(before, epochs)


def test_stored_accuracies_rise_when_a_maxpool_becomes_conv3x3(small_space_structured, small_space_cells) -> None:
    """Read back from the file: every cell of up to 5 vertices with a max-pool against the same
    cell with its first max-pool made a conv3x3 (found by module hash); noise and all, the
    swapped cells are better on average and in most pairs."""
    dataset = NASBench(small_space_structured, cache=False, progress=False, workers=1)
    valid = dataset.tables.metrics[:, 0, :, 6].mean(axis=1)
    gains = []
    for cell in small_space_cells:
        if MAXPOOL3X3 in cell.ops:
            swapped = _swapped(ModelSpec([list(r) for r in cell.matrix], list(cell.ops)), MAXPOOL3X3, CONV3X3, 0)
            gains.append(valid[dataset.row_of(swapped.module_hash)] - valid[dataset.row_of(cell.module_hash)])
    gains = np.array(gains)
    assert len(gains) > 1000
    assert gains.mean() > 0.01 and (gains > 0).mean() > 0.75


# --- budgets and the shape of the space ---------------------------------------------------------------
@pytest.fixture(scope="module")
def spread_runs() -> np.ndarray:
    """Mean validation accuracy of 3 runs (cells × the four budgets) of the structured landscape,
    for 2,000 cells spread over the space (each run's noise from one generator, in order)."""
    cells = sample_cells(2000)
    runs = random.Random(0)
    valid = np.zeros((len(cells), len(FULL)))
    for row, cell in enumerate(cells):
        parameters = lower(ModelSpec(cell.matrix, cell.ops)).trainable_parameters
        for column, epochs in enumerate(FULL):
            valid[row, column] = np.mean(
                [STRUCTURED.final_validation(cell, parameters, epochs, runs) for _ in range(3)]
            )
    return valid


def test_budgets_correlate_loosely(spread_runs) -> None:
    at = {epochs: spread_runs[:, i] for i, epochs in enumerate(FULL)}
    assert 0.45 < _spearman(at[4], at[108]) < 0.85  # clearly positive, well below 0.9
    assert _spearman(at[36], at[108]) > 0.8  # high over the whole space
    top = at[108] >= np.quantile(at[108], 0.9)
    assert 0.15 < _spearman(at[36][top], at[108][top]) < 0.6  # low among the best (the paper: 0.365)
    assert at[4].mean() < at[12].mean() < at[36].mean() < at[108].mean()


def test_accuracies_have_a_long_tail_and_rare_best_cells(spread_runs) -> None:
    """At 108 epochs (validation; the fixture's test accuracy is about 0.006 lower): mean about
    0.90, a few % of cells below 0.8, the best about 0.95 and rare."""
    valid = spread_runs[:, FULL.index(108)]
    assert 0.89 < valid.mean() < 0.915
    assert 0.005 < (valid < 0.8).mean() < 0.06
    assert 0.94 < valid.max() < 0.965
    assert (valid > valid.max() - 0.005).mean() < 0.01  # within half a point of the best: under 1 %


# --- what a search finds -----------------------------------------------------------------------------
def _searches(dataset: NASBench, seeds: range, queries: int = 100) -> tuple[list, list]:
    options = SearchOptions(population_size=10, tournament_size=3, deduplicate=True)
    budget = Budget(queries, "queries")
    return (
        [regularized_evolution(dataset, budget, seed, options) for seed in seeds],
        [random_search(dataset, budget, seed, options) for seed in seeds],
    )


def _open(path) -> tuple[NASBench, np.ndarray]:
    dataset = NASBench(path, cache=False, progress=False, workers=1)
    return dataset, dataset.tables.metrics[:, 0, :, 6].mean(axis=1)


def _later_half_gain(path, seeds: range) -> float:
    """How much better (mean validation, 3 runs) the cells evolution queries in the second half of
    its runs are than those random search queries then, averaged over ``seeds``."""
    dataset, valid = _open(path)

    def later_half(result) -> float:
        hashes = result.queried_hashes[len(result.queried_hashes) // 2 :]
        return float(np.mean([valid[dataset.row_of(h)] for h in hashes]))

    evolution, random = _searches(dataset, seeds)
    return float(np.mean([later_half(e) - later_half(r) for e, r in zip(evolution, random)]))


def test_evolution_exploits_the_structured_landscape_and_not_the_hashed_one(
    small_space_structured, small_space
) -> None:
    """On every cell of up to 5 vertices, 10 seeds of 100 queries: evolution's later queries are
    better cells than random search's on the structured landscape (by ~0.04), not on the hashed
    one (where a mutated child is as good as any cell)."""
    structured = _later_half_gain(small_space_structured, range(10))
    hashed = _later_half_gain(small_space, range(10))
    assert structured > 0.02 > abs(hashed)


@pytest.mark.slow
def test_evolution_finds_better_cells_than_random_search_on_the_structured_landscape_only(
    small_space_structured, small_space
) -> None:
    """The best cell found (validation, as the search selects), 40 seeds of 100 queries: evolution
    beats random search on the structured landscape, by more than twice the standard error of the
    mean gain; on the hashed landscape they tie, within twice theirs."""

    def gains(path) -> np.ndarray:
        dataset, _ = _open(path)
        evolution, random = _searches(dataset, range(40))
        return np.array([e.best_valids[-1] - r.best_valids[-1] for e, r in zip(evolution, random)])

    structured, hashed = gains(small_space_structured), gains(small_space)
    standard_error = lambda g: g.std(ddof=1) / math.sqrt(len(g))  # noqa: E731
    assert structured.mean() > 2 * standard_error(structured)
    assert abs(hashed.mean()) < 2 * standard_error(hashed)


# --- the command ------------------------------------------------------------------------------------
def test_cli_data_fixture_landscape(tmp_path) -> None:
    """``--landscape structured`` writes what the library writes for that landscape."""
    out = tmp_path / "s_synthetic.tfrecord"
    result = invoke(["data", "fixture", str(out), "--cells", "8", "--landscape", "structured"])
    assert result.exit_code == 0, result.output
    written = records_in(out)
    cells = [_cell_of(record) for record in written[::3]]  # the cells the command drew, one record in 3
    assert len(cells) == 8 and written == list(fixture_records(cells, landscape="structured"))
    assert written != list(fixture_records(cells))  # not the default, hashed, landscape
    bad = tmp_path / "x_synthetic.tfrecord"
    assert_one_line_error(invoke(["data", "fixture", str(bad), "--landscape", "smooth"]), "--landscape", "smooth")
    assert not bad.exists()
