"""The plan: parameter counts against the dataset, FLOPs, per-stack bodies, naming."""

from __future__ import annotations

import example_cells
import pytest
from example_cells import INCEPTION_HASH, INCEPTION_MODULE_NAME
from hypothesis import given, settings
from strategies import valid_specs

from nbcompile import ConfigError, ModelSpec, NetworkConfig, OutOfDomainError
from nbcompile.compiler.lower import lower
from nbcompile.compiler.naming import module_name_for, validate_module_name
from nbcompile.compiler.report import same_network

INCEPTION = ModelSpec.from_dict(example_cells.INCEPTION)
TWO_VERTEX = ModelSpec.from_dict(example_cells.TWO_VERTEX)
ONE_CONV = ModelSpec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3", "output"])
ONE_MAXPOOL = ModelSpec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "maxpool3x3", "output"])
#: The cell of upstream's GitHub issue 23 (google-research/nasbench), as in examples/upstream_issue23.json.
UPSTREAM_ISSUE_23 = ModelSpec(
    [
        [0, 1, 1, 0, 0, 1, 1],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ],
    ["input", "conv1x1", "conv3x3", "maxpool3x3", "conv3x3", "conv3x3", "output"],
)
PER_STACK = ModelSpec.from_dict(example_cells.PER_STACK_TRUNCATION)

# trainable_parameters as the dataset's records store them (nasbench_only108.tfrecord)
REFERENCE_PARAMETERS = [
    (INCEPTION, 2_694_282),
    (TWO_VERTEX, 882_570),
    (ONE_MAXPOOL, 882_570),
    (ONE_CONV, 10_177_674),
    (UPSTREAM_ISSUE_23, 32_426_634),
]


@pytest.mark.parametrize(("spec", "expected"), REFERENCE_PARAMETERS)
def test_plan_counts_the_dataset_parameters(spec: ModelSpec, expected: int) -> None:
    assert lower(spec).trainable_parameters == expected
    assert lower(spec, canonical=True).trainable_parameters == expected


@pytest.mark.parametrize(("spec", "expected"), REFERENCE_PARAMETERS[:4])
def test_built_dynamic_network_has_the_dataset_parameters(spec: ModelSpec, expected: int) -> None:
    from nbcompile import DynamicNetwork

    network = DynamicNetwork(spec)
    assert sum(p.numel() for p in network.parameters() if p.requires_grad) == expected


def test_inception_flops() -> None:
    # 2 FLOPs per multiply-add of every conv and the classifier, per 32x32 image.
    assert lower(INCEPTION).flops == 804_005_888


def test_one_body_per_channel_pair() -> None:
    plan = lower(INCEPTION)
    assert [b.class_name for b in plan.cell_bodies] == [
        "Cell128To128",
        "Cell128To256",
        "Cell256To256",
        "Cell256To512",
        "Cell512To512",
    ]
    assert [c.class_name for c in plan.cells] == [
        "Cell128To128",
        "Cell128To128",
        "Cell128To128",
        "Cell128To256",
        "Cell256To256",
        "Cell256To256",
        "Cell256To512",
        "Cell512To512",
        "Cell512To512",
    ]
    assert [c.downsample_before for c in plan.cells] == [False] * 3 + [True, False, False] * 2
    assert [c.side for c in plan.cells] == [32] * 3 + [16] * 3 + [8] * 3


def test_truncation_differs_between_stacks() -> None:
    plan = lower(PER_STACK)
    truncations = {
        body.class_name: [t.truncate_to for step in body.steps for t in step.terms if t.truncate_to]
        for body in plan.cell_bodies
    }
    assert truncations == {
        "Cell128To128": [],
        "Cell128To256": [85],
        "Cell256To256": [85],
        "Cell256To512": [],
        "Cell512To512": [],
    }


def test_projections_exist_exactly_for_input_edges() -> None:
    body = lower(INCEPTION).cell_bodies[0]
    names = [layer.name for layer in body.layers]
    assert names == ["proj1", "op1", "proj2", "op2", "proj3", "op3", "op4", "proj5"]
    assert body.concat == ("v1", "v2", "v4", "v5") and body.output_projection is None
    two = lower(TWO_VERTEX).cell_bodies[0]
    assert [layer.name for layer in two.layers] == ["proj1"] and two.concat == ()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(valid_specs())
def test_plan_count_equals_the_built_network(spec: ModelSpec) -> None:
    from nbcompile import DynamicNetwork

    config = NetworkConfig(stem_channels=7, num_stacks=3, cells_per_stack=1)
    plan = lower(spec, config)
    network = DynamicNetwork(spec, **config.as_dict())
    assert plan.trainable_parameters == sum(p.numel() for p in network.parameters())
    canonical = lower(spec, config, canonical=True)
    assert canonical.built.is_canonical()
    if same_network(plan, canonical):
        assert plan.trainable_parameters == canonical.trainable_parameters


def test_config_changes_the_network() -> None:
    plan = lower(INCEPTION, NetworkConfig(stem_channels=16, num_stacks=2, cells_per_stack=1, num_labels=5))
    assert [b.class_name for b in plan.cell_bodies] == ["Cell16To16", "Cell16To32"]
    assert plan.classifier_in == 32


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stem_channels": 0}, "stem_channels = 0 is out of range"),
        ({"num_stacks": 2.5}, "num_stacks must be an integer"),
        ({"num_labels": True}, "num_labels must be an integer"),
        ({"depth": 3}, "unknown config option 'depth'"),
    ],
)
def test_bad_config_values(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NetworkConfig.from_kwargs(**overrides)


def test_too_small_stem_for_the_cell() -> None:
    with pytest.raises(ConfigError, match="cannot be split among the 4 vertices"):
        lower(INCEPTION, NetworkConfig(stem_channels=3))


def test_lowering_validates() -> None:
    with pytest.raises(OutOfDomainError):
        lower(ModelSpec([[0, 0], [0, 0]], ["input", "output"]))


def test_default_names() -> None:
    config = NetworkConfig()
    canonical_name = f"nb101_{INCEPTION_HASH[:12]}"
    assert module_name_for(lower(INCEPTION, config)) == INCEPTION_MODULE_NAME
    assert module_name_for(lower(INCEPTION, config, canonical=True)) == canonical_name
    assert module_name_for(lower(INCEPTION.canonical(), config)) == canonical_name
    other = module_name_for(lower(INCEPTION, NetworkConfig(stem_channels=64), canonical=True))
    assert other.startswith(canonical_name + "_") and other != INCEPTION_MODULE_NAME


@pytest.mark.parametrize("name", ["class", "1net", "a-b", "x" * 101, "", "os.path", "a b"])
def test_invalid_module_names(name: str) -> None:
    with pytest.raises(ConfigError, match="not a valid Python module name"):
        validate_module_name(name)
