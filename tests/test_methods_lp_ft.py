"""LP-FT (Kumar et al. 2022), phase 1: the probe reaches the optimum of the regularised
logistic regression on the frozen features, computed independently in NumPy:
  J(W, b) = (1/n) sum_i -log softmax(W^T phi_i + b)_{y_i} + l2/2 ||W||^2
  grad_W = Phi^T (P - Y) / n + l2 W,  grad_b = sum_i (P - Y)_i / n
solved in float64 by Newton's method (strictly convex in W for l2 > 0; b up to a constant,
which softmax ignores); the backbone is untouched.
"""
import keras
import numpy as np
import tensorflow as tf

from tftransfer.methods import lp_ft, registry
from tftransfer.models.build import build

SHAPE = (10, 10, 1)
L2 = 0.2


def np_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def np_objective_grad(phi, y, w, b, l2):
    n, k = len(y), w.shape[1]
    p = np_softmax(phi @ w + b)
    r = p - np.eye(k)[y]
    return phi.T @ r / n + l2 * w, r.sum(axis=0) / n


def np_logistic_optimum(phi, y, k, l2, iterations=50):
    """Newton's method on the flattened (W, b) of the regularised softmax regression."""
    n, d = phi.shape
    x1 = np.concatenate([phi, np.ones((n, 1))], axis=1)
    theta = np.zeros((d + 1, k))
    reg = np.diag(np.r_[np.full(d, l2), 0.0])
    for _ in range(iterations):
        p = np_softmax(x1 @ theta)
        grad = x1.T @ (p - np.eye(k)[y]) / n + reg @ theta
        hess = np.zeros(((d + 1) * k, (d + 1) * k))
        for i in range(n):
            s = np.diag(p[i]) - np.outer(p[i], p[i])
            hess += np.kron(np.outer(x1[i], x1[i]), s) / n
        hess += np.kron(reg, np.eye(k)) + 1e-12 * np.eye(hess.shape[0])
        theta -= np.linalg.solve(hess, grad.reshape(-1)).reshape(d + 1, k)
    return theta[:-1], theta[-1]


class LinearProbeTest(tf.test.TestCase):

    def setUp(self):
        keras.utils.set_random_seed(0)
        self.tm = build("small_resnet", 3, "none", input_shape=SHAPE, seed=0,
                        arch_kwargs={"widths": (4, 8)})
        rng = np.random.default_rng(0)
        for layer in self.tm.model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_mean.assign(0.1 * rng.normal(size=layer.moving_mean.shape))
        self.x = rng.normal(size=(24,) + SHAPE).astype(np.float32)
        self.y = rng.integers(0, 3, 24)

    def test_probe_reaches_the_numpy_optimum_and_leaves_the_backbone(self):
        model = self.tm.model
        before = {v.path: v.numpy().copy() for v in model.weights}
        phi = lp_ft.feature_model(model).predict(self.x, verbose=0).astype(np.float64)
        self.assertAllClose(phi, keras.Model(model.inputs[0], model.get_layer("avg_pool").output)(
            self.x, training=False).numpy(), atol=1e-6)  # inference-mode features
        # Full-batch gradient descent with step 1/L, L >= the Hessian's largest eigenvalue.
        lipschitz = np.linalg.eigvalsh(np.c_[phi, np.ones(len(phi))].T @ np.c_[
            phi, np.ones(len(phi))] / len(phi)).max() / 2 + L2
        result = lp_ft.linear_probe(model, (self.x, self.y), l2=L2, epochs=1500,
                                    batch_size=None,
                                    optimizer=keras.optimizers.SGD(1.0 / lipschitz),
                                    tolerance=0.0, patience=1500)
        self.assertEqual(result.epochs, 1500)
        self.assertEqual((result.examples, result.feature_dim), (24, 8))
        head = model.get_layer("predictions")
        w, b = head.kernel.numpy().astype(np.float64), head.bias.numpy().astype(np.float64)
        gw, gb = np_objective_grad(phi, self.y, w, b, L2)
        self.assertLess(max(np.abs(gw).max(), np.abs(gb).max()), 1e-5)
        w_star, b_star = np_logistic_optimum(phi, self.y, 3, L2)
        self.assertAllClose(w, w_star, atol=2e-4)
        # softmax is unchanged by a constant added to every bias: compare b up to its mean
        self.assertAllClose(b - b.mean(), b_star - b_star.mean(), atol=2e-4)
        for v in model.weights:
            if not v.path.startswith("predictions/"):
                self.assertAllEqual(v.numpy(), before[v.path])
        self.assertEqual(self.tm.features().shape[-1], 8)  # the model's graph is intact

    def test_dataset_input_early_stopping_and_then_fine_tuning(self):
        data = tf.data.Dataset.from_tensor_slices((self.x, self.y)).batch(8)
        result = lp_ft.linear_probe(self.tm.model, data, learning_rate=0.05, epochs=2000,
                                    tolerance=1e-4, patience=3)
        self.assertLess(result.epochs, 2000)
        self.assertLess(result.losses[-1], result.losses[0])
        model = self.tm.model  # phase 2: every layer trains from the probed head
        probed = model.get_layer("predictions").kernel.numpy().copy()
        stem = model.get_layer("stem_conv").kernel.numpy().copy()
        model.compile(keras.optimizers.SGD(0.01),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(self.x, self.y, epochs=1, batch_size=8, verbose=0)
        self.assertNotAllClose(model.get_layer("stem_conv").kernel.numpy(), stem)
        self.assertNotAllClose(model.get_layer("predictions").kernel.numpy(), probed)

    def test_errors_and_registration(self):
        with self.assertRaisesRegex(ValueError, "not the Dense classifier"):
            lp_ft.linear_probe(self.tm.model, (self.x, self.y), head="avg_pool")
        self.assertEqual(registry.get("lp_ft").kind, "procedure")


if __name__ == "__main__":
    tf.test.main()
