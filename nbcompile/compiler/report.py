"""What ``nbcompile info`` reports about a spec."""

from __future__ import annotations

import json
import re
from typing import Any

from nbcompile.compiler.config import NetworkConfig
from nbcompile.compiler.lower import lower
from nbcompile.compiler.naming import module_name_for
from nbcompile.compiler.plan import NetworkPlan
from nbcompile.space import graph
from nbcompile.space.spec import ModelSpec


def same_network(a: NetworkPlan, b: NetworkPlan) -> bool:
    """True if the two plans build the same network up to a renumbering of the cell's vertices.

    Both cells must be isomorphic; the networks are the same when some isomorphism also maps
    every vertex's channel count in every cell body onto the other's.
    """
    ma, oa = a.built.pruned_matrix, a.built.pruned_ops
    mb, ob = b.built.pruned_matrix, b.built.pruned_ops
    if len(ma) != len(mb) or a.config != b.config:
        return False
    size = len(ma)
    channels_a = [body.vertex_channels for body in a.cell_bodies]
    channels_b = [body.vertex_channels for body in b.cell_bodies]
    for order in graph.interior_orders(size):  # vertex i of b is vertex order[i] of a
        if graph.relabel(ma, order) != mb or tuple(oa[v] for v in order) != ob:
            continue
        if all(tuple(va[v] for v in order) == vb for va, vb in zip(channels_a, channels_b)):
            return True
    return False


def spec_info(spec: ModelSpec, config: NetworkConfig, canonical: bool = False) -> dict[str, Any]:
    """A JSON-ready report: pruned spec, hash, validity, channels, parameters and FLOPs."""
    info: dict[str, Any] = {
        "spec": spec.to_dict(),
        "pruned_spec": spec.pruned_dict() if spec.valid_spec else None,
        "valid": spec.is_valid(),
    }
    reason = spec.domain_error()
    if reason is not None:
        info["reason"] = reason
        return info
    plan = lower(spec, config, canonical)
    canonical_spec = spec.canonical()
    info["module_hash"] = spec.module_hash
    info["canonical_spec"] = canonical_spec.pruned_dict()
    info["is_canonical"] = spec.is_canonical()
    info["labeling"] = "canonical" if canonical else "as given"
    info["config"] = config.as_dict()
    info["vertex_channels"] = {pair: list(vc) for pair, vc in plan.vertex_channels().items()}
    info["trainable_parameters"] = plan.trainable_parameters
    info["flops"] = plan.flops
    canonical_plan = plan if canonical else lower(spec, config, canonical=True)
    info["canonical_trainable_parameters"] = canonical_plan.trainable_parameters
    info["same_network_as_canonical"] = same_network(plan, canonical_plan)
    info["module_name"] = module_name_for(plan)
    return info


def info_json(info: dict[str, Any]) -> str:
    """The report as indented JSON, with each matrix row and channel list on one line."""
    text = json.dumps(info, indent=2)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)


def format_info(info: dict[str, Any]) -> str:
    """Readable text for a report from :func:`spec_info`."""
    lines = []
    if info["pruned_spec"] is not None:
        lines.append("pruned spec:")
        for row, op in zip(info["pruned_spec"]["matrix"], info["pruned_spec"]["ops"]):
            lines.append("  " + " ".join(map(str, row)) + "   " + op)
    lines.append(f"valid: {'yes' if info['valid'] else 'no: ' + info['reason']}")
    if not info["valid"]:
        return "\n".join(lines)
    lines.append(f"module_hash: {info['module_hash']}")
    lines.append(f"labeling: {info['labeling']}; canonical: {'yes' if info['is_canonical'] else 'no'}")
    if not info["same_network_as_canonical"]:
        lines.append(
            "note: this labeling builds a different network than the canonical one NAS-Bench-101 "
            f"trained ({info['canonical_trainable_parameters']:,} parameters); "
            "compile with the canonical option for that one"
        )
    lines.append("vertex_channels:")
    lines.extend(f"  {pair}: {vc}" for pair, vc in info["vertex_channels"].items())
    lines.append(f"trainable_parameters: {info['trainable_parameters']:,}")
    lines.append(f"flops: {info['flops']:,} per 32x32 image")
    lines.append(f"module_name: {info['module_name']}")
    return "\n".join(lines)
