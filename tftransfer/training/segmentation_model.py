"""The driver's segmentation model (``--task=segmentation``): built, penalised and compiled
inside the strategy's scope, as :mod:`tftransfer.training.model` does for classification.

Order: dtype policy -> :func:`tftransfer.models.segmentation.build_segmentation` (the
source weights of ``--arch``/``--source``/``--weights`` copied into the dilated backbone of
``--output_stride``, the head ``--seg_head``, batch norm ``--batch_norm_mode``,
synchronised under ``mirrored``/``multi_worker`` unless ``--synchronized_bn`` says
otherwise, PSPNet's auxiliary head of weight ``--aux_loss_weight``) -> ``penalize`` (the
inherited kernels toward the loaded weights, the new layers toward 0, as in classification)
-> SGD with momentum and the learning-rate schedule of
:func:`tftransfer.training.model.learning_rate_schedule` -> ``compile`` with the loss of
:mod:`tftransfer.training.segmentation_loss`.

The trained network maps images to the logits ``[B, H, W, K]``, or with the auxiliary head
to ``[logits, aux_logits]`` concatenated on the class axis (``2K``), so one loss and one
label map serve both; the evaluated and exported network (``Compiled.inference``) is the
model's ``model``: images -> logits.
"""
import keras

from tftransfer.training import model as model_lib
from tftransfer.training import segmentation_loss

DISTRIBUTED = ("mirrored", "multi_worker")


def output_stride(config):
    """``--output_stride``, default 8 (ImageNet ResNets) or 4 (small_resnet)."""
    t = config.task
    if t.output_stride is not None:
        return t.output_stride
    return 4 if config.model.arch == "small_resnet" else 8


def synchronized(config):
    """``--synchronized_bn``, default on under ``mirrored``/``multi_worker``."""
    if config.task.synchronized_bn is not None:
        return config.task.synchronized_bn
    return config.runtime.strategy in DISTRIBUTED


def build(config, num_classes, input_shape):
    """The uncompiled :class:`tftransfer.models.segmentation.SegmentationModel` of
    ``config`` for images of ``input_shape[-1]`` channels and any height and width (the
    training crops, whole images and sliding windows at evaluation)."""
    from tftransfer.models.segmentation import build_segmentation

    m, t = config.model, config.task
    return build_segmentation(
        t.seg_head, m.arch, num_classes, m.source, weights=m.weights,
        input_shape=(None, None, input_shape[-1]), output_stride=output_stride(config),
        layout=m.layout, source_classes=m.source_classes, head_init=m.head_init,
        seed=config.optim.seed, batch_norm=t.batch_norm_mode,
        synchronized_bn=synchronized(config), aux_weight=t.aux_loss_weight,
        arch_kwargs=model_lib.arch_kwargs(config))


def training_network(segmentation):
    """``segmentation.model``, or with an auxiliary head one output ``[logits, aux]``
    concatenated on the class axis (the same layers)."""
    train = segmentation.train_model
    if train is segmentation.model or len(train.outputs) == 1:
        return segmentation.model, None
    joined = keras.layers.Concatenate(axis=-1, name="logits_and_aux", dtype="float32")(
        [keras.ops.cast(o, "float32") for o in train.outputs])
    return keras.Model(train.inputs, joined, name=f"{train.name}_train"), segmentation.aux_weight


def build_compiled(config, strategy, num_classes, input_shape):
    """Builds and compiles the segmentation model of ``config`` under ``strategy``; a
    :class:`tftransfer.training.model.Compiled` whose ``inference`` is the evaluated
    network."""
    p = config.penalty
    keras.mixed_precision.set_dtype_policy(config.runtime.precision)
    fisher = None
    if p.fisher_file:
        from tftransfer import fisher as fisher_lib

        fisher = fisher_lib.load(p.fisher_file)
    with strategy.scope():
        segmentation = build(config, num_classes, input_shape)
        plan = segmentation.penalize(p.scheme, p.alpha, p.beta, fisher=fisher,
                                     epsilon=p.epsilon,
                                     penalize_all_trainable=p.penalize_all_trainable)
        network, aux_weight = training_network(segmentation)
        optimizer = keras.optimizers.SGD(model_lib.learning_rate_schedule(config),
                                         momentum=config.optim.momentum)
        network.compile(optimizer=optimizer,
                        loss=segmentation_loss.SegmentationLoss(num_classes, aux_weight),
                        metrics=[segmentation_loss.PixelAccuracy(num_classes)],
                        jit_compile=config.runtime.xla, auto_scale_loss=True)
        network.optimizer.build(network.trainable_variables)
    return model_lib.Compiled(segmentation, network, plan, [], inference=segmentation.model)
