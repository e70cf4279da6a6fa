"""Target models from KerasHub presets (the optional ``[kerashub]`` extra).

``build_from_preset(preset, num_classes)`` takes a KerasHub image-classifier or backbone
preset, by name (downloaded by KerasHub, online) or as a local preset directory (offline,
e.g. one written by ``backbone.save_to_preset(dir)``), and returns a
:class:`~tftransfer.models.build.TransferModel` like :func:`tftransfer.models.build`:

    x in [0, 255] -> preset_rescaling (x * scale + offset, the preset's image converter)
      -> backbone -> avg_pool (global average) -> predictions (new Dense, logits)

- ``new_layers = ["predictions"]``: every other weight (the backbone's, nested models
  included) is inherited, so ``penalize`` anchors its convolution and dense kernels;
- ``source_head``: an image-classifier preset's own classifier, copied with its weights (the
  source task, Li et al. 2018, Table 5); None for a backbone preset;
- ``preprocessing = "raw"``: the model scales its inputs itself, from the preset;
- ``units = []``: freezing by unit (Li et al. 2018, Figure 3) is defined for this package's
  networks only; freeze KerasHub layers by name (``layer.trainable = False``).

A preset without an image converter gets scale 1/255 and offset 0.
"""
import os
from typing import Any, Sequence

import keras
import numpy as np

from tftransfer.extras import install_hint
from tftransfer.models import preprocessing as preprocessing_lib
from tftransfer.models.build import FEATURES, HEAD, HEAD_INITS, TransferModel, copy_head

INSTALL_HINT = install_hint("kerashub")


def _keras_hub():
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(f"KerasHub presets need the keras_hub package: {INSTALL_HINT}.") \
            from error
    return keras_hub


def _is_task_preset(preset):
    """A local preset directory holds ``task.json`` when it was saved from a task (an
    image classifier); a preset name is tried as a classifier first."""
    return os.path.isfile(os.path.join(preset, "task.json")) if os.path.isdir(preset) else None


def load_preset(preset: str) -> tuple[keras.Model, keras.layers.Dense | None, Any]:
    """``(backbone, classifier Dense or None, image converter or None)`` of ``preset``."""
    hub = _keras_hub()
    if os.path.exists(preset) and not os.path.isdir(preset):
        raise ValueError(f"KerasHub preset {preset!r} is a file; give a preset directory "
                         "(saved with save_to_preset) or a preset name.")
    task = _is_task_preset(preset)
    if task is not False:
        try:
            classifier = hub.models.ImageClassifier.from_preset(preset)
        except Exception:  # not a classifier preset: a backbone one (or a bad name, below)
            if task:
                raise
        else:
            converter = getattr(classifier.preprocessor, "image_converter", None)
            return classifier.backbone, classifier.output_dense, converter
    backbone = hub.models.Backbone.from_preset(preset)
    try:
        converter = hub.layers.ImageConverter.from_preset(preset)
    except Exception:  # a backbone saved alone has no converter
        converter = None
    return backbone, None, converter


def _scale_offset(converter, channels):
    scale = getattr(converter, "scale", None)
    offset = getattr(converter, "offset", None)
    scale = np.broadcast_to(np.asarray(1 / 255 if scale is None else scale, np.float32),
                            (channels,))
    offset = np.broadcast_to(np.asarray(0.0 if offset is None else offset, np.float32),
                             (channels,))
    return scale, offset


def build_from_preset(preset: str, num_classes: int, input_shape: Sequence[int] = (224, 224, 3),
                      head_init: str = "he", seed: int | None = None,
                      name: str | None = None) -> TransferModel:
    """The :class:`TransferModel` of a KerasHub ``preset`` for ``num_classes`` (module
    docstring). ``input_shape``: (height, width, channels) of the images."""
    if head_init not in HEAD_INITS:
        raise ValueError(f"Unknown head_init {head_init!r}; expected one of {list(HEAD_INITS)}.")
    backbone, source_dense, converter = load_preset(preset)
    scale, offset = _scale_offset(converter, input_shape[-1])
    inputs = keras.Input(tuple(input_shape))
    x = keras.layers.Rescaling(scale.tolist(), offset.tolist(), name="preset_rescaling")(inputs)
    features = keras.layers.GlobalAveragePooling2D(name=FEATURES)(backbone(x))
    head = keras.layers.Dense(int(num_classes), kernel_initializer=HEAD_INITS[head_init](seed=seed),
                              bias_initializer="zeros", name=HEAD)
    model = keras.Model(inputs, head(features), name=name or f"{backbone.name}_transfer")
    source_head = None if source_dense is None else copy_head(source_dense, features.shape[-1])
    return TransferModel(model=model, new_layers=[HEAD], source_head=source_head, units=[],
                         preprocessing=preprocessing_lib.check_mode("raw"),
                         arch=f"kerashub:{preset}", layout="native", source="kerashub",
                         weights=str(preset))
