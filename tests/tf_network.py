"""The TensorFlow side of test_tensorflow_equivalence.py, run as a script in its own process.

    python tests/tf_network.py INPUT.npz OUTPUT.npz [float32|float64]

The network is built by ``nasbench_keras.build_keras_model`` (PyPI ``nasbench-keras`` 0.2.4, a
third-party tf.keras port of upstream's ``model_builder.py``; nbcompile did not write it). It
targets Keras 2: its cells apply TensorFlow ops (``tf.identity``, ``tf.add``, ``tf.concat``) to
symbolic Keras tensors, which only Keras 2 (the ``tf-keras`` package) accepts. So this script
must run with ``TF_USE_LEGACY_KERAS=1`` set before TensorFlow is imported; the test sets it in
this process's environment only, never in its own.

INPUT.npz holds ``matrix``, ``ops`` (the cell, which nasbench_keras prunes its own way), the
network's ``stem_channels``, ``num_stacks``, ``cells_per_stack``, ``ghost_groups``, ``images``
(NCHW float32), ``labels``, the hyperparameters ``lr``, ``decay``, ``momentum``, ``epsilon``,
``weight_decay``, and the weights in upstream's order of creation: ``conv{i}`` (OIHW),
``gamma{i}``, ``beta{i}``, ``mean{i}``, ``var{i}`` for the i-th conv-BN-ReLU (stem, then per cell
and vertex the input projection before the vertex's conv, the output projection last), and
``dense_w`` (out × in), ``dense_b``. OUTPUT.npz holds the same names after one training step
(weights and moving statistics), plus ``eval_logits``, ``train_logits``, ``loss`` and
``grad_{name}`` for every trainable weight (in the input's layouts), all as TensorFlow computed
them, in float32 or, with ``float64``, in float64 (then Keras's BatchNormalization takes its
non-fused path, whose moving variance is updated with the biased batch variance where the fused
float32 kernel, as upstream used, takes the unbiased one).

What runs is upstream's training step, in eager mode: the logits with ``training=True`` (the
batch's statistics; Keras's BatchNormalization then updates its moving statistics, as upstream's
UPDATE_OPS do; with ``ghost_groups`` G > 1 the batch goes through the model in G equal slices,
one call each, as upstream's TPU shards each normalised their own slice, and OUTPUT.npz also
holds ``ghost{h}_mean{i}``, ``ghost{h}_var{i}``: the moving statistics after slice h),
``tf.compat.v1.losses.softmax_cross_entropy`` + ``weight_decay · Σ tf.nn.l2_loss(v)`` over every
trainable variable, and one ``tf.compat.v1.train.RMSPropOptimizer`` step (upstream's optimizer:
its ``ms`` slots start at 1, ε inside the square root).
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np


def _creation_order(layers: list, kind: str) -> list:
    """Layers of class ``kind`` in the order they were created (Keras numbers its default names:
    ``conv2d``, ``conv2d_1``, ...; the process is fresh, so the numbering starts at 0)."""
    picked = [layer for layer in layers if type(layer).__name__ == kind]

    def index(layer) -> int:
        match = re.fullmatch(r"[a-z0-9_]+?(?:_(\d+))?", layer.name)
        assert match is not None, layer.name
        return int(match.group(1) or 0)

    return sorted(picked, key=index)


def main(source: str, target: str, dtype: str = "float32") -> None:
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise SystemExit("set TF_USE_LEGACY_KERAS=1: nasbench_keras needs Keras 2 (tf-keras)")
    import tensorflow as tf
    from nasbench_keras import ModelSpec, build_keras_model

    tf.config.experimental.enable_op_determinism()
    tf.keras.backend.set_floatx(dtype)
    data = np.load(source)
    images = np.ascontiguousarray(data["images"].transpose(0, 2, 3, 1)).astype(dtype)  # NHWC
    labels = data["labels"]
    batch = images.shape[0]
    ops = [str(op) for op in data["ops"]]
    spec = ModelSpec(data["matrix"], ops, data_format="channels_last")
    config = {
        "stem_filter_size": int(data["stem_channels"]),
        "data_format": "channels_last",
        "num_stacks": int(data["num_stacks"]),
        "num_modules_per_stack": int(data["cells_per_stack"]),
        "num_labels": 10,
    }
    groups = int(data["ghost_groups"])
    # nasbench_keras reshapes with the static batch size: the model takes one ghost batch at a time
    features = tf.keras.Input((32, 32, 3), batch_size=batch // groups)
    model = tf.keras.Model(features, build_keras_model(spec, features, None, config))
    ghost_batches = np.split(images, groups)

    convs = _creation_order(model.layers, "Conv2D")
    norms = _creation_order(model.layers, "BatchNormalization")
    (dense,) = _creation_order(model.layers, "Dense")
    count = sum(1 for name in data.files if re.fullmatch(r"conv\d+", name))
    if len(convs) != count or len(norms) != count:
        raise SystemExit(f"nasbench_keras built {len(convs)} convs and {len(norms)} BatchNorms, expected {count}")
    trainable = {}
    for i, (conv, norm) in enumerate(zip(convs, norms)):
        conv.kernel.assign(data[f"conv{i}"].transpose(2, 3, 1, 0))  # OIHW → HWIO
        norm.gamma.assign(data[f"gamma{i}"])
        norm.beta.assign(data[f"beta{i}"])
        norm.moving_mean.assign(data[f"mean{i}"])
        norm.moving_variance.assign(data[f"var{i}"])
        trainable.update({f"conv{i}": conv.kernel, f"gamma{i}": norm.gamma, f"beta{i}": norm.beta})
    dense.kernel.assign(data["dense_w"].T)
    dense.bias.assign(data["dense_b"])
    trainable.update({"dense_w": dense.kernel, "dense_b": dense.bias})
    if {id(v) for v in trainable.values()} != {id(v) for v in model.trainable_variables}:
        raise SystemExit("the trainable variables are not exactly the transferred weights")

    out = {"eval_logits": np.concatenate([model(part, training=False).numpy() for part in ghost_batches])}
    moving = []  # with ghost batches: the moving statistics after each one
    with tf.GradientTape() as tape:
        parts = []
        for part in ghost_batches:
            parts.append(model(part, training=True))  # in eager mode, updates the moving statistics now
            moving.append([(norm.moving_mean.numpy(), norm.moving_variance.numpy()) for norm in norms])
        logits = tf.concat(parts, 0)
        loss = tf.compat.v1.losses.softmax_cross_entropy(tf.one_hot(labels, 10), logits)
        loss += float(data["weight_decay"]) * tf.add_n([tf.nn.l2_loss(v) for v in model.trainable_variables])
    names = list(trainable)
    grads = tape.gradient(loss, [trainable[name] for name in names])
    optimizer = tf.compat.v1.train.RMSPropOptimizer(
        float(data["lr"]), decay=float(data["decay"]), momentum=float(data["momentum"]), epsilon=float(data["epsilon"])
    )
    optimizer.apply_gradients(list(zip(grads, [trainable[name] for name in names])))
    out["train_logits"] = logits.numpy()
    out["loss"] = np.asarray(loss.numpy())
    for name, grad in zip(names, grads):
        value = grad.numpy()
        if name.startswith("conv"):
            value = value.transpose(3, 2, 0, 1)  # HWIO → OIHW
        out[f"grad_{name}"] = value.T if name == "dense_w" else value
    for i, (conv, norm) in enumerate(zip(convs, norms)):
        out[f"conv{i}"] = conv.kernel.numpy().transpose(3, 2, 0, 1)  # HWIO → OIHW
        out[f"gamma{i}"] = norm.gamma.numpy()
        out[f"beta{i}"] = norm.beta.numpy()
        out[f"mean{i}"] = norm.moving_mean.numpy()
        out[f"var{i}"] = norm.moving_variance.numpy()
    if groups > 1:
        for h, statistics in enumerate(moving):
            for i, (mean, variance) in enumerate(statistics):
                out[f"ghost{h}_mean{i}"], out[f"ghost{h}_var{i}"] = mean, variance
    out["dense_w"] = dense.kernel.numpy().T
    out["dense_b"] = dense.bias.numpy()
    np.savez(target, **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
