"""Choosing the tf.distribute strategy a training run uses.

- ``default``: the current (single-device) strategy.
- ``mirrored``: `tf.distribute.MirroredStrategy` over the local devices (all GPUs, or, with
  ``logical_cpus`` > 1, the CPU split into that many logical devices, which is how the
  tests exercise synchronous data parallelism on a CPU-only machine).
- ``multi-worker``: `tf.distribute.MultiWorkerMirroredStrategy`, cluster taken from the
  ``TF_CONFIG`` environment variable (one process per worker).

The global batch size is what the user sets; Keras splits it across replicas, and the
input pipeline is sharded per worker by file (see `data_pipelines.datasets`).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from data_pipelines.errors import UserError

if TYPE_CHECKING:
    import tensorflow as tf

# TensorFlow is imported inside the functions: the command line lists these names in
# --help without loading it.
STRATEGIES = ("default", "mirrored", "multi-worker")


def split_cpu(logical_cpus: int) -> None:
    """Splits the physical CPU into ``logical_cpus`` logical devices.

    Must run before TensorFlow initialises its devices (before the first op).
    """
    import tensorflow as tf   # inside: --help lists STRATEGIES without loading it

    if logical_cpus < 1:
        raise UserError(f"logical_cpus must be >= 1, got {logical_cpus}")
    if logical_cpus == 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(logical_cpus)])
    except RuntimeError as error:
        raise RuntimeError(
            "cannot split the CPU into logical devices after TensorFlow has initialised; "
            "choose the strategy before building any tensors") from error


def make_strategy(name: str = "default", logical_cpus: int = 1) -> tf.distribute.Strategy:
    """Returns the distribution strategy called ``name`` (one of `STRATEGIES`)."""
    import tensorflow as tf   # inside: --help lists STRATEGIES without loading it

    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        split_cpu(logical_cpus)
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if "TF_CONFIG" not in os.environ:
        raise UserError("the multi-worker strategy needs the TF_CONFIG environment variable "
                        "(cluster and task of this worker)")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as error:
        raise UserError(f"TF_CONFIG is not valid JSON: {error}") from error
    return tf.distribute.MultiWorkerMirroredStrategy()


def process_count(strategy: tf.distribute.Strategy) -> int:
    """Training processes of the strategy's cluster (chief and workers); 1 for a single process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return max(1, sum(len(cluster.get(task, ())) for task in ("chief", "worker")))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints, summaries and results.

    Single-process strategies are always chief; in a multi-worker cluster it is the task
    of type ``chief``, or worker 0 when the cluster names no chief.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and \
        "chief" not in resolver.cluster_spec().as_dict()


def wait_for_every_process(strategy: tf.distribute.Strategy) -> None:
    """Returns once every training process of the strategy's cluster has called it (an
    all-reduce across the workers), so what one process wrote before the call is there for
    the others after it; at once with a single process."""
    if process_count(strategy) > 1:
        import tensorflow as tf   # inside: --help lists STRATEGIES without loading it

        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)
