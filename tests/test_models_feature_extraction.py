"""tftransfer.models.feature_extraction: the frozen-features baseline end to end."""
import numpy as np
import tensorflow as tf

from tftransfer.models import feature_extraction as fe
from tftransfer.models.build import build

SHAPE = (8, 8, 3)
CLASSES = 3


def synthetic(n_per_class, seed):
    """Images whose colour depends on the class, plus noise: linearly separable features."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(CLASSES), n_per_class)
    colours = np.eye(3)[labels] * 200.0
    images = colours[:, None, None, :] + rng.normal(0, 20, (len(labels),) + SHAPE)
    return images.astype("float32") / 255.0, labels


class FeatureBaselineTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tm = build("small_resnet", 5, "none", input_shape=SHAPE, seed=0,
                       arch_kwargs={"widths": (4, 8)})
        cls.train, cls.test = synthetic(20, 0), synthetic(10, 1)

    def test_features_are_l2_normalised_pooled_features(self):
        features_model = self.tm.feature_model()
        data = tf.data.Dataset.from_tensor_slices(self.train).batch(7)
        phi, labels = fe.extract_features(features_model, data, verbose=False)
        raw = features_model(self.train[0], training=False).numpy().astype(np.float64)
        self.assertAllClose(phi, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-5,
                            atol=1e-6)
        np.testing.assert_array_equal(labels, self.train[1])

    def test_logistic_and_svm_end_to_end(self):
        for classifier, kwargs in (("logistic", {"epochs": 30, "seed": 0}), ("svm", {})):
            with self.subTest(classifier=classifier):
                result = fe.feature_baseline(self.tm.feature_model(), self.train, self.test,
                                             CLASSES, classifier=classifier, batch_size=16,
                                             verbose=False, **kwargs)
                self.assertEqual(result["num_train"], 60)
                self.assertEqual(result["num_test"], 30)
                self.assertEqual(result["feature_dim"], 8)
                for key in ("train_accuracy", "test_accuracy"):
                    self.assertBetween(result[key], 0.0, 1.0)
                    # accuracies are multiples of 1/N: computed on every example
                    n = result["num_" + key.split("_")[0]]
                    self.assertAllClose(result[key] * n, round(result[key] * n))

    def test_logistic_regression_reaches_a_minimum(self):
        phi, labels = fe.extract_features(self.tm.feature_model(), self.train, verbose=False)
        model = fe.fit_logistic_regression(phi, labels, CLASSES, l2=0.0, epochs=200,
                                           learning_rate=0.1, seed=0)
        kernel, bias = model.get_layer("logistic").get_weights()
        logits = phi @ kernel + bias
        # The NumPy gradient of the mean cross-entropy, phi^T (softmax - onehot) / N, at the
        # fitted weights is far below its value at the zero initialisation.
        def grad_norm(logits):
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            return np.linalg.norm(phi.T @ (p - np.eye(CLASSES)[labels]) / len(labels))
        self.assertLess(grad_norm(logits), 0.1 * grad_norm(np.zeros_like(logits)))

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, "Unknown classifier"):
            fe.feature_baseline(self.tm.feature_model(), self.train, self.test, CLASSES,
                                classifier="knn")
        with self.assertRaisesRegex(ValueError, "inputs but 1 labels"):
            fe.extract_features(self.tm.feature_model(), (self.train[0], [0]), verbose=False)
        with self.assertRaisesRegex(ValueError, r"\(images, labels\)"):
            fe.extract_features(self.tm.feature_model(), self.train[0], verbose=False)
