"""The ``tf.distribute`` strategy chosen by ``--strategy``, set up before any other TF work.

- ``default``: the default strategy (one device: CPU or the first GPU);
- ``mirrored``: ``MirroredStrategy`` over every GPU, or over the logical CPU devices made
  by ``--cpu_logical_devices=N`` when there is no GPU;
- ``multi_worker``: ``MultiWorkerMirroredStrategy``, cluster and task from ``TF_CONFIG``;
- ``tpu``: ``TPUStrategy`` on ``--tpu``.

Whatever the strategy, ``--batch_size`` is the global batch: Keras splits it over the
replicas and averages the gradients, so the update equals the single-device one.
"""
import json
import os

import tensorflow as tf


def split_cpu(count):
    """Splits the first physical CPU into ``count`` logical devices (before TF starts)."""
    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])


def make_strategy(config):
    """The strategy of ``--strategy`` (``config.runtime``)."""
    runtime = config.runtime
    split_cpu(runtime.cpu_logical_devices)
    if runtime.strategy == "default":
        return tf.distribute.get_strategy()
    if runtime.strategy == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    if runtime.strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=runtime.tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def _tf_config():
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def is_chief():
    """True unless TF_CONFIG names this task a non-chief worker (worker 0 is the chief when
    the cluster has no 'chief' job)."""
    tf_config = _tf_config()
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    kind, index = task.get("type"), task.get("index", 0)
    if kind is None or kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in cluster


def task_id():
    """``'<type>_<index>'`` of this task ('chief' outside a cluster)."""
    task = _tf_config().get("task", {})
    return f"{task['type']}_{task.get('index', 0)}" if task else "chief"
