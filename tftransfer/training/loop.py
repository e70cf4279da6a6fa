"""Training for the remaining steps: ``model.fit``, except under ``multi_worker``.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585:
it reduces per-replica values with ``strategy.reduce(..., axis=0)``, which that strategy
rejects for the data batch and the scalar logs). For that strategy only, :func:`fit` runs
the equivalent loop itself: the same ``model.train_step`` (loss, penalty, gradients,
optimizer, metrics) on each replica through ``strategy.run``, the logs averaged over
replicas, and the same callbacks. Everything else (model, data, callbacks) is shared.
"""
import keras
import tensorflow as tf


def fit(model, dataset, steps, callbacks, progress_bar=False):
    """Trains ``model`` for ``steps`` batches of ``dataset`` with ``callbacks``."""
    strategy = model.distribute_strategy
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        model.fit(dataset, steps_per_epoch=steps, epochs=1, shuffle=False,
                  verbose=2 if progress_bar else 0, callbacks=callbacks)
        return
    with strategy.scope():  # builds the compiled metrics from one local batch's shapes
        model._symbolic_build(data_batch=next(iter(dataset.take(1))))
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    @tf.function
    def step():
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return {name: strategy.reduce("MEAN", value, axis=None) for name, value in logs.items()}

    for metric in model.metrics:
        metric.reset_state()
    hooks = keras.callbacks.CallbackList(callbacks, model=model)
    model.stop_training = False
    hooks.on_train_begin()
    for batch in range(steps):
        hooks.on_train_batch_begin(batch)
        logs = {name: float(value) for name, value in step().items()}
        hooks.on_train_batch_end(batch, logs)
    hooks.on_train_end()
