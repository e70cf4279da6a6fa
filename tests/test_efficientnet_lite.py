"""EfficientNet-Lite0 in Keras: the published layout, units, and training at two sizes."""
import keras
import numpy as np
import tensorflow as tf

from tftransfer.models import efficientnet_lite
from tftransfer.models.efficientnet_lite import efficientnet_lite0, unit_names

# The EfficientNet-Lite0 table (Tan & Le 2019, Table 1 without SE; TF "lite" builder):
# (repeats, kernel, stride, expansion, output channels).
PAPER_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def _sgd_step(model, size, classes):
    """One eager SGD step on random data; returns the largest change of each variable."""
    x = np.random.default_rng(size).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    y = np.array([0, classes - 1])
    before = [v.numpy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            y, model(x, training=True), from_logits=True))
    grads = tape.gradient(loss, model.trainable_variables)
    keras.optimizers.SGD(0.1).apply(grads, model.trainable_variables)
    return loss, [np.abs(v.numpy() - b).max() for v, b in zip(model.trainable_variables, before)]


class EfficientNetLite0Test(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model = efficientnet_lite0()

    def test_published_parameter_counts(self):
        self.assertEqual(_count(self.model.trainable_weights), 4_652_008)
        self.assertEqual(_count(self.model.weights), 4_694_024)
        headless = efficientnet_lite0(include_top=False)
        self.assertEqual(_count(headless.trainable_weights), 3_371_008)
        self.assertEqual(headless.output.shape, (None, 1280))
        self.assertEqual(headless.layers[-1].name, "avg_pool")

    def test_block_table_of_the_paper(self):
        specs = [(k, s if r == 0 else 1, e, c) for n, k, s, e, c in PAPER_STAGES
                 for r in range(n)]
        self.assertLen(specs, 16)
        channels = 32
        for i, (kernel, stride, expand, filters) in enumerate(specs, start=1):
            with self.subTest(block=i):
                dw = self.model.get_layer(f"block{i}_dwconv")
                self.assertEqual(dw.kernel_size, (kernel, kernel))
                self.assertEqual(dw.strides, (stride, stride))
                self.assertEqual(dw.kernel.shape[2], channels * expand)
                self.assertEqual(self.model.get_layer(f"block{i}_project_conv").filters,
                                 filters)
                names = {layer.name for layer in self.model.layers}
                self.assertEqual(f"block{i}_expand_conv" in names, expand != 1)
                self.assertEqual(f"block{i}_add" in names, stride == 1 and channels == filters)
                channels = filters
        self.assertEqual(self.model.get_layer("top_conv").output.shape, (None, 7, 7, 1280))

    def test_lite_details(self):
        layers = self.model.layers
        bns = [l for l in layers if isinstance(l, keras.layers.BatchNormalization)]
        self.assertTrue(all(l.epsilon == 1e-3 for l in bns))
        relus = [l for l in layers if isinstance(l, keras.layers.ReLU)]
        self.assertTrue(relus and all(float(l.max_value) == 6.0 for l in relus))
        convs = [l for l in layers if isinstance(l, keras.layers.Conv2D)]  # incl. depthwise
        self.assertTrue(all(l.padding == "same" and not l.use_bias for l in convs))
        self.assertFalse([l for l in layers if isinstance(l, keras.layers.Multiply)],
                         "no squeeze-and-excitation")
        self.assertIs(self.model.get_layer("predictions").activation, keras.activations.linear)
        self.assertIn(efficientnet_lite.PREPROCESSING, ("torch", "tf", "caffe"))

    def test_logits_not_probabilities(self):
        x = np.random.default_rng(1).uniform(-1, 1, (2, 224, 224, 3)).astype("float32")
        model = self.model
        dense = model.get_layer("predictions")
        features = keras.Model(model.input, model.get_layer("avg_pool").output)(x).numpy()
        expected = features @ dense.kernel.numpy() + dense.bias.numpy()
        self.assertAllClose(model(x).numpy(), expected, atol=1e-5)

    def test_units_partition_the_layers(self):
        units = unit_names()
        self.assertEqual(units, ["stem"] + [f"block{i}" for i in range(1, 17)] + ["top"])
        outside = {"images", "avg_pool", "predictions"}
        for layer in self.model.layers:
            if layer.name not in outside:
                owners = [u for u in units if layer.name.startswith(u + "_")]
                self.assertLen(owners, 1, layer.name)
        with_weights = {u for u in units for l in self.model.layers
                        if l.weights and l.name.startswith(u + "_")}
        self.assertEqual(with_weights, set(units))

    def test_train_step_at_96_and_224(self):
        for size, model in ((96, efficientnet_lite0(input_shape=(96, 96, 3), classes=5)),
                            (224, self.model)):
            with self.subTest(size=size):
                classes = model.output.shape[-1]
                loss, changes = _sgd_step(model, size, classes)
                self.assertTrue(np.isfinite(float(loss)))
                self.assertGreater(min(changes), 0.0, "every trainable variable moves")
