"""Vectorised sums of weighted squared per-example gradients (the engine behind the Fisher).

For a model ``f`` mapping a batch of independent examples to logits, labels ``y_n`` and
weights ``c_n``, :class:`SquaredGradients` computes for every selected variable ``w``::

    S(w) = sum_n c_n * (d/dw log softmax(f(x_n))[y_n])**2

without a Python loop over examples. Method (Goodfellow 2015, "Efficient per-example
gradient computations"): the model is cloned with every layer that owns a selected variable
wrapped in a *tap* recording the layer's input ``a`` and pre-activation output ``z``. One
forward and one backward pass of ``sum_n log p_{y_n}(x_n)`` give ``delta = dL/dz`` whose row
``n`` is example ``n``'s own gradient, because examples do not interact (batch norm runs in
inference mode). Per-example weight gradients then follow in closed form:

- ``Dense``:  ``dW_n = a_n^T delta_n``, ``db_n = sum(delta_n)``;
- ``Conv2D`` (channels_last, groups=1): ``dW_n = patches(a_n)^T delta_n`` with
  ``tf.image.extract_patches`` (patch layout kh, kw, c_in = the HWIO kernel layout);
- ``BatchNormalization`` (inference): ``dgamma_n = sum(delta_n * x_hat_n)``,
  ``dbeta_n = sum(delta_n)``, ``x_hat = (a - moving_mean) / sqrt(moving_var + eps)``;
- any other layer (depthwise convolution, layer norm, ...): the vector-Jacobian product of
  that single layer, vectorised over examples with ``tf.vectorized_map``.

Only functional and Sequential Keras models can be cloned this way. TensorFlow backend
only (the taps and gradients are TensorFlow ops): :func:`require_tensorflow` says so.
"""
import keras
import tensorflow as tf


def require_tensorflow(what):
    """Raises RuntimeError unless Keras runs on the TensorFlow backend."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{what} runs on the TensorFlow backend only (KERAS_BACKEND={backend}). Compute the "
            "Fisher with KERAS_BACKEND=tensorflow (tools/compute_fisher.py), save it with "
            "tftransfer.fisher.save, and pass tftransfer.fisher.load(path) to "
            "tftransfer.penalize on any backend.")


class _Recorder:
    """Collects ``(layer, a, z)`` from the taps while ``active``."""

    def __init__(self):
        self.active = False
        self.records = []


class _Tap(keras.layers.Layer):
    """Computes ``layer(inputs)`` and, while ``recorder.active``, records (layer, a, z)."""

    def __init__(self, layer, recorder, **kwargs):
        super().__init__(name=layer.name + "_tap", **kwargs)
        self.layer = layer
        self.recorder = recorder

    def compute_output_spec(self, inputs, training=None, mask=None):
        return self.layer.compute_output_spec(inputs)

    def call(self, inputs, training=None, mask=None):
        layer = self.layer
        kind = _kind(layer, len(inputs.shape))
        if kind in ("conv2d", "dense"):
            if kind == "conv2d":
                z = layer.convolution_op(inputs, layer.kernel)
            else:
                z = keras.ops.matmul(inputs, layer.kernel)
            if layer.bias is not None:
                z = z + layer.bias
            out = layer.activation(z) if layer.activation is not None else z
        else:
            z = out = layer(inputs, training=training)
        if self.recorder.active:
            self.recorder.records.append((layer, inputs, z))
        return out


def _kind(layer, rank):
    """Which closed form gives the layer's per-example gradients (None: generic VJP)."""
    if (type(layer) is keras.layers.Conv2D and layer.groups == 1
            and layer.data_format == "channels_last"):
        return "conv2d"
    if (type(layer) is keras.layers.Dense and not getattr(layer, "lora_enabled", False)
            and getattr(layer, "quantization_mode", None) is None):
        return "dense"
    if type(layer) is keras.layers.BatchNormalization and layer.axis % rank == rank - 1:
        return "batchnorm"
    return None


def _closed_form(layer, kind, a, delta):
    """Per-example gradients ``{id(variable): [N, *shape]}`` of a Dense/Conv2D/BatchNorm."""
    if kind == "batchnorm":
        axes = list(range(1, len(delta.shape) - 1))
        x_hat = (a - layer.moving_mean) * tf.math.rsqrt(layer.moving_variance + layer.epsilon)
        grads = {}
        if layer.scale:
            grads[id(layer.gamma)] = tf.reduce_sum(delta * x_hat, axis=axes)
        if layer.center:
            grads[id(layer.beta)] = tf.reduce_sum(delta, axis=axes)
        return grads
    if kind == "conv2d":
        (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
        patches = tf.image.extract_patches(
            a, sizes=[1, kh, kw, 1], strides=[1, sh, sw, 1], rates=[1, dh, dw, 1],
            padding=layer.padding.upper())
        kernel = tf.einsum("nhwq,nhwo->nqo", patches, delta)
        shape = tf.concat([tf.shape(delta)[:1], tf.shape(layer.kernel)], 0)
        grads = {id(layer.kernel): tf.reshape(kernel, shape)}
    else:
        a = tf.reshape(a, [tf.shape(a)[0], -1, tf.shape(a)[-1]])
        delta = tf.reshape(delta, [tf.shape(delta)[0], -1, tf.shape(delta)[-1]])
        grads = {id(layer.kernel): tf.einsum("npi,npo->nio", a, delta)}
    if layer.bias is not None:
        grads[id(layer.bias)] = tf.reduce_sum(delta, axis=list(range(1, len(delta.shape) - 1)))
    return grads


def _vjp(layer, a, delta):
    """Per-example gradients of any layer's weights: its VJP, vectorised over examples."""
    weights = layer.trainable_weights

    def one(args):
        a_n, delta_n = args
        with tf.GradientTape() as tape:
            z_n = layer(a_n[None], training=False)
        return tape.gradient(z_n, weights, output_gradients=delta_n[None])

    return dict(zip(map(id, weights), tf.vectorized_map(one, (a, delta))))


class SquaredGradients:
    """``S(w)`` of the module docstring for ``variables`` of ``model``; call inside tf.function.

    Args:
      model: a functional or Sequential ``keras.Model`` that outputs logits.
      variables: the variables to differentiate (some of ``model.trainable_variables``).
    """

    def __init__(self, model, variables):
        require_tensorflow("tftransfer.per_example.SquaredGradients")
        self.variables = list(variables)
        wanted = {id(v) for v in self.variables}
        self._recorder = _Recorder()
        owned = set()

        def clone(layer):
            if not isinstance(layer, keras.Model) and any(
                    id(w) in wanted for w in layer.trainable_weights):
                owned.update(id(w) for w in layer.trainable_weights)
                return _Tap(layer, self._recorder)
            return layer

        try:
            self._tapped = keras.models.clone_model(model, clone_function=clone, recursive=True)
        except ValueError as err:
            raise TypeError(
                f"per-example gradients need a functional or Sequential keras.Model; cloning "
                f"{type(model).__name__} failed ({err}). Build the network with keras.Input "
                "and keras.Model.") from err
        missing = [v.path for v in self.variables if id(v) not in owned]
        if missing:
            raise ValueError(f"variables {missing} are not owned by a layer of the model; "
                             "pass variables of the model itself.")

    def __call__(self, x, labels, weights):
        """Returns ``[S(w) for w in variables]`` for inputs ``x``, labels/weights of shape [N]."""
        self._recorder.records = []
        self._recorder.active = True
        try:
            with tf.GradientTape() as tape:
                logits = self._tapped(x, training=False)
                log_probs = tf.nn.log_softmax(logits, axis=-1)
                objective = tf.reduce_sum(tf.gather(log_probs, labels, axis=1, batch_dims=1))
        finally:
            self._recorder.active = False
        records = self._recorder.records
        if len({id(layer) for layer, _, _ in records}) != len(records):
            raise ValueError("a layer owning a selected variable is called more than once per "
                             "example (shared layer); per-example gradients of shared layers "
                             "are not supported.")
        deltas = tape.gradient(objective, [z for _, _, z in records])
        totals = {id(v): tf.zeros_like(v) for v in self.variables}
        weights = tf.cast(weights, logits.dtype)
        for (layer, a, _), delta in zip(records, deltas):
            kind = _kind(layer, len(a.shape))
            grads = _closed_form(layer, kind, a, delta) if kind else _vjp(layer, a, delta)
            for key, g in grads.items():
                if key in totals:
                    totals[key] += tf.einsum("n,n...->...", weights, tf.square(g))
        return [totals[id(v)] for v in self.variables]
