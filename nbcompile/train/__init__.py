"""Training generated networks with NAS-Bench-101's own recipe (upstream's ``nasbench/lib``).

* :mod:`~nbcompile.train.cifar10`: CIFAR-10's binary distribution (reader, MD5-checked download);
* :mod:`~nbcompile.train.data`: images resident on the device as uint8, augmented there;
* :mod:`~nbcompile.train.recipe`: TF's RMSProp, the cosine-by-step schedule, the loss, ghost BN;
* :mod:`~nbcompile.train.loop`: one run (:func:`~nbcompile.train.loop.train_run`);
* :mod:`~nbcompile.train.results`: run JSON and records in the dataset's TFRecord format;
* :mod:`~nbcompile.train.sweep`: many runs, in process, per GPU or on Ray, with retries and resume;
* :mod:`~nbcompile.train.plots`: a metrics plot per run.

Importing this package imports nothing heavy; its modules import torch where they need it.
"""
