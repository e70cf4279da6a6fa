"""One call from an architecture and a source to a target model: :func:`build`.

``build(arch, num_classes, source, weights=None, ...)`` builds the source network (with its
source classifier, named ``predictions``), loads the source weights, and returns a
:class:`TransferModel`:

- ``model``: the target network, the source network with its classifier replaced by a fresh
  ``Dense(num_classes)`` named ``predictions`` (He or Glorot initialisation, zero bias) that
  outputs logits;
- ``new_layers``: names of the layers not inherited from the source (the new classifier;
  every layer with weights when ``source="none"``), ready for
  ``tftransfer.penalize(model, scheme, alpha, beta, new_layers=tm.new_layers)``;
- ``source_head``: the source classifier with its pretrained weights, kept aside (a
  ``Dense`` named ``source_predictions`` that outputs logits), and ``source_model()``, which
  puts it back on the (fine-tuned) backbone to evaluate the source task (paper, Table 5);
- ``units``: the freezable units, input to output; ``preprocessing``: the mode of
  :mod:`tftransfer.models.preprocessing` that matches the weights.

Sources: ``imagenet`` (1000 classes), ``places365`` (365), ``custom`` (your own source task:
give ``weights`` and ``source_classes``) and ``none`` (random initialisation: nothing is
inherited, there is no source head, every layer is new).

Weights: a local file (``.weights.h5``, ``.keras`` or a legacy ``.h5`` such as the
keras.applications files) saved from the same architecture **with** its source classifier,
at any input size. Without a file, ``source="imagenet"`` downloads the keras.applications
ResNet weights (cached under ``$KERAS_HOME/models``, default ``~/.keras/models``, written
atomically) or the converted EfficientNet-Lite0 weights
(:func:`tftransfer.models.pretrained.efficientnet_lite0_imagenet`).
"""
import dataclasses
import hashlib
import numbers
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import keras

from tftransfer.io_utils import atomic_path
from tftransfer.models import preprocessing as preprocessing_lib
from tftransfer.models import weights_file
from tftransfer.models.units import unit_names

ARCHS = ("resnet50", "resnet101", "resnet152", "efficientnet_lite0", "small_resnet")
SOURCES = ("imagenet", "places365", "custom", "none")
SOURCE_CLASSES = {"imagenet": 1000, "places365": 365}
HEAD_INITS = {"he": keras.initializers.HeNormal, "glorot": keras.initializers.GlorotUniform}
HEAD = "predictions"
KERASHUB_PREFIX = "kerashub:"
SOURCE_HEAD = "source_predictions"
FEATURES = "avg_pool"

_RESNET_DEPTH = {"resnet50": 50, "resnet101": 101, "resnet152": 152}
_KERAS_RESNETS = {"resnet50": keras.applications.ResNet50,
                  "resnet101": keras.applications.ResNet101,
                  "resnet152": keras.applications.ResNet152}
# The keras.applications ImageNet files (with the 1000-way classifier) and their MD5 sums.
KERAS_RESNET_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
                    "{arch}_weights_tf_dim_ordering_tf_kernels.h5")
KERAS_RESNET_MD5 = {"resnet50": "2cb95161c43110f7111970584f804107",
                    "resnet101": "f1aeb4b969a6efcfb50fad2f0c20cfc5",
                    "resnet152": "100835be76be38e30d865e96f2aaae62"}


@dataclasses.dataclass
class TransferModel:
    """What :func:`build` returns; see the module docstring."""

    model: keras.Model
    new_layers: List[str]
    source_head: Optional[keras.layers.Dense]
    units: List[str]
    preprocessing: str
    arch: str
    layout: str
    source: str
    weights: Optional[str]

    @property
    def inherited_layers(self) -> List[str]:
        """Names of the layers with weights taken from the source network."""
        new = set(self.new_layers)
        return [layer.name for layer in self.model.layers if layer.weights and
                layer.name not in new]

    def features(self) -> Any:
        """The tensor fed to the classifier (penultimate features, after any dropout)."""
        return self.model.get_layer(HEAD).input

    def feature_model(self) -> keras.Model:
        """``keras.Model``: images -> globally pooled features (``avg_pool``), sharing the
        target model's layers."""
        return keras.Model(self.model.input, self.model.get_layer(FEATURES).output,
                           name=self.model.name + "_features")

    def source_model(self) -> keras.Model:
        """``keras.Model``: images -> source-task logits, the target model's (possibly
        fine-tuned) backbone followed by the kept source classifier."""
        if self.source_head is None:
            raise ValueError(f"No source head: the model was built with source={self.source!r}"
                             " (nothing inherited). Build with a pretrained source to keep it.")
        return keras.Model(self.model.input, self.source_head(self.features()),
                           name=self.model.name + "_source")

    def preprocess(self, images: Any, mean: Optional[Sequence[float]] = None) -> Any:
        """``preprocessing.preprocess(images, self.preprocessing, mean)``: RGB in [0, 255]
        -> network input; ``mean`` is the target-training-set RGB mean, if used."""
        return preprocessing_lib.preprocess(images, self.preprocessing, mean)

    def penalize(self, scheme: str, alpha: float, beta: float, **kwargs: Any) -> Any:
        """``tftransfer.penalize(self.model, scheme, alpha, beta, new_layers=self.new_layers,
        **kwargs)``."""
        from tftransfer.penalty import penalize
        return penalize(self.model, scheme, alpha, beta, new_layers=self.new_layers, **kwargs)


def build(arch: str, num_classes: int, source: str, weights: Optional[str] = None,
          input_shape: Sequence[int] = (224, 224, 3), head_init: str = "he",
          layout: Optional[str] = None, source_classes: Optional[int] = None,
          preprocessing: Optional[str] = None, seed: Optional[int] = None,
          cache_dir: Optional[str] = None, arch_kwargs: Optional[Dict[str, Any]] = None,
          name: Optional[str] = None) -> TransferModel:
    """Builds the target model of ``arch`` for ``num_classes`` classes from ``source``.

    Args:
      arch: one of :data:`ARCHS`, or ``"kerashub:<preset>"``: a KerasHub image-classifier or
        backbone preset, by name or local directory (:mod:`tftransfer.models.kerashub`;
        the other arguments but ``num_classes``, ``input_shape``, ``head_init``, ``seed``
        and ``name`` then do not apply: the preset is the source).
      num_classes: classes of the target task (width of the new classifier).
      source: one of :data:`SOURCES`.
      weights: optional local weights file of the source network (with its classifier).
      input_shape: (height, width, channels) of the preprocessed input.
      head_init: ``"he"`` (He normal) or ``"glorot"`` (Glorot uniform) for the new kernel.
      layout: ResNets only: ``"keras"`` (keras.applications, default) or ``"torch"``
        (torchvision layout, :mod:`tftransfer.models.resnet_torch`).
      source_classes: classes of the source classifier; defaults to 1000 (imagenet) and
        365 (places365); required for ``source="custom"``.
      preprocessing: override the preprocessing mode reported for the weights.
      seed: seed of the new classifier's initialisation.
      cache_dir: cache of downloaded or converted weights (default: ``$KERAS_HOME`` or
        ``~/.keras`` for the keras.applications files, ``tftransfer.models.pretrained``'s
        cache for converted ones).
      arch_kwargs: extra arguments of the architecture (``small_resnet``: ``widths``,
        ``blocks_per_stage``; ``efficientnet_lite0``: ``dropout_rate``).
      name: name of the target model.
    """
    if isinstance(arch, str) and arch.startswith(KERASHUB_PREFIX):
        from tftransfer.models.kerashub import build_from_preset
        given = [n for n, v in (("weights", weights), ("layout", layout),
                                ("source_classes", source_classes), ("preprocessing",
                                preprocessing), ("arch_kwargs", arch_kwargs)) if v is not None]
        if given or source == "none":
            raise ValueError(f"arch={arch!r}: the KerasHub preset is the source network, its "
                             f"weights and its preprocessing; drop {given or ['source=none']}.")
        return build_from_preset(arch[len(KERASHUB_PREFIX):], num_classes, input_shape,
                                 head_init, seed, name)
    _check_args(arch, num_classes, source, weights, head_init, source_classes)
    layout = resolve_layout(arch, layout)
    if source in SOURCE_CLASSES:
        source_classes = source_classes or SOURCE_CLASSES[source]
    if source != "none" and weights is None:
        weights = _default_weights(arch, layout, source, cache_dir)
    full, default_mode = source_network(arch, layout, tuple(input_shape),
                                        source_classes or num_classes, arch_kwargs)
    if source != "none":
        _load(full, weights, arch, layout, source_classes)
    features = full.get_layer(HEAD).input
    head = keras.layers.Dense(int(num_classes), kernel_initializer=HEAD_INITS[head_init](seed=seed),
                              bias_initializer="zeros", name=HEAD)
    inputs = full.inputs[0] if len(full.inputs) == 1 else full.inputs
    model = keras.Model(inputs, head(features), name=name or f"{arch}_transfer")
    if source == "none":
        new_layers, source_head = [layer.name for layer in model.layers if layer.weights], None
    else:
        new_layers, source_head = [HEAD], copy_head(full.get_layer(HEAD), features.shape[-1])
    return TransferModel(
        model=model, new_layers=new_layers, source_head=source_head, units=unit_names(model),
        preprocessing=preprocessing_lib.check_mode(preprocessing or default_mode), arch=arch,
        layout=layout, source=source, weights=None if source == "none" else str(weights))


def _check_args(arch, num_classes, source, weights, head_init, source_classes):
    if arch not in ARCHS:
        raise ValueError(f"Unknown arch {arch!r}; expected one of {ARCHS}.")
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}; expected one of {SOURCES}.")
    if not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if head_init not in HEAD_INITS:
        raise ValueError(f"Unknown head_init {head_init!r}; expected one of {list(HEAD_INITS)}.")
    if source == "none" and weights is not None:
        raise ValueError("source='none' means random initialisation, but weights were given; "
                         "pass the source the weights come from (e.g. source='imagenet').")
    if source == "custom" and (weights is None or source_classes is None):
        raise ValueError("source='custom' needs weights= (your source network's weights file) "
                         "and source_classes= (the width of its classifier).")
    if weights is not None and not os.path.isfile(weights):
        raise FileNotFoundError(f"Weights file {weights!r} does not exist.")


def resolve_layout(arch: str, layout: Optional[str]) -> str:
    """The layout of ``arch`` that ``layout`` (None: the default) designates; ValueError
    for a layout ``arch`` does not have."""
    if arch in _RESNET_DEPTH:
        layout = layout or "keras"
        if layout not in ("keras", "torch"):
            raise ValueError(f"Unknown layout {layout!r} for {arch}; expected 'keras' "
                             "(keras.applications) or 'torch' (torchvision).")
        return layout
    if layout not in (None, "native"):
        raise ValueError(f"{arch} has a single layout; do not pass layout={layout!r}.")
    return "native"


def source_network(arch: str, layout: str, input_shape: Tuple[int, ...], classes: int,
                   arch_kwargs: Optional[Dict[str, Any]] = None) -> Tuple[keras.Model, str]:
    """The source architecture with its classifier ``predictions`` (random weights, nothing
    loaded) and the preprocessing mode of its pretrained weights. ``layout``: as
    :func:`resolve_layout` returns it. Built inside ``keras.StatelessScope``, its variables
    have names and shapes but no values (cheap checks of names and shapes)."""
    arch_kwargs = dict(arch_kwargs or {})
    if arch in _RESNET_DEPTH and layout == "keras":
        model = _KERAS_RESNETS[arch](include_top=True, weights=None, input_shape=input_shape,
                                     classes=classes, classifier_activation=None, **arch_kwargs)
        return model, "caffe"
    if arch in _RESNET_DEPTH:
        from tftransfer.models import resnet_torch
        return (resnet_torch.resnet_torch(depth=_RESNET_DEPTH[arch], input_shape=input_shape,
                                          include_top=True, classes=classes, **arch_kwargs),
                resnet_torch.PREPROCESSING)
    if arch == "efficientnet_lite0":
        from tftransfer.models import efficientnet_lite
        return (efficientnet_lite.efficientnet_lite0(input_shape=input_shape, include_top=True,
                                                     classes=classes, **arch_kwargs),
                efficientnet_lite.PREPROCESSING)
    from tftransfer.models.small_resnet import small_resnet
    return small_resnet(input_shape=input_shape, num_classes=classes, **arch_kwargs), "unit"


def _default_weights(arch, layout, source, cache_dir):
    """Path of the source weights when no file was given; raises when there is no download."""
    if source == "imagenet" and arch in _RESNET_DEPTH and layout == "keras":
        return keras_resnet_imagenet_weights(arch, cache_dir)
    if source == "imagenet" and arch == "efficientnet_lite0":
        from tftransfer.models.pretrained import efficientnet_lite0_imagenet
        return efficientnet_lite0_imagenet(cache_dir=cache_dir)
    raise ValueError(
        f"No download of {source} weights for arch={arch!r} (layout {layout!r}); pass a local "
        f"file with weights=... saved from the same architecture with its "
        f"{SOURCE_CLASSES.get(source, 'source')}-way classifier (e.g. model.save_weights("
        "'source.weights.h5')).")


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def keras_resnet_imagenet_weights(arch: str, cache_dir: Optional[str] = None) -> str:
    """Path of the keras.applications ImageNet weights of ``arch`` (with the classifier),
    downloaded on first use to ``<cache_dir>/models``. The download goes to a temporary
    directory and is moved into the cache only once its MD5 sum checks out."""
    cache_dir = cache_dir or os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras")
    url = KERAS_RESNET_URL.format(arch=arch)
    target = os.path.join(cache_dir, "models", os.path.basename(url))
    if os.path.isfile(target) and _md5(target) == KERAS_RESNET_MD5[arch]:
        return target
    with tempfile.TemporaryDirectory(prefix="tftransfer-download-") as tmp:
        try:
            path = keras.utils.get_file(os.path.basename(url), url, cache_dir=tmp,
                                        cache_subdir="download",
                                        file_hash=KERAS_RESNET_MD5[arch])
        except Exception as error:
            from tftransfer.models.pretrained import WeightsUnavailableError
            raise WeightsUnavailableError(
                f"Could not download the keras.applications ImageNet weights of {arch} from "
                f"{url} ({error}). Download that file elsewhere and pass it with "
                f"build(..., weights='/path/{os.path.basename(url)}'), or copy it to "
                f"{target}. Nothing was written to {os.path.dirname(target)}.") from error
        with atomic_path(target) as out:
            shutil.copyfile(path, out)
    return target


def _load(model, path, arch, layout, source_classes):
    """Loads ``path`` into ``model``; on failure one line of ValueError (never Keras' dump
    of the variable's values) naming the first layer that does not fit."""
    problem = weights_file.mismatch(model, path)
    if problem is None:
        try:
            model.load_weights(path)
            return
        except Exception as error:  # whatever Keras raised, told in one line below
            problem = weights_file.one_line(error)
    raise ValueError(
        f"Could not load weights file {path!r} into {arch} (layout {layout!r}, "
        f"{source_classes}-way classifier '{HEAD}'): {problem}. The file must be saved from "
        "the same architecture with its classifier, e.g. keras.applications.ResNet50("
        "weights=None, classes=1000).save_weights('x.weights.h5'); set source_classes= "
        "to the width of that classifier.")


def copy_head(layer: keras.layers.Dense, features_dim: int) -> keras.layers.Dense:
    """A logits ``Dense`` named ``source_predictions`` with the weights of ``layer``."""
    head = keras.layers.Dense(layer.units, name=SOURCE_HEAD)
    head.build((None, features_dim))
    head.set_weights(layer.get_weights())
    return head
