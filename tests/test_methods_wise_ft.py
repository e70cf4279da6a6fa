"""WiSE-FT (Wortsman et al. 2022): theta(a) = (1 - a) theta_0 + a theta_1 against NumPy,
exact at a = 0 and a = 1 (weights bit for bit, hence outputs bit for bit)."""
import keras
import numpy as np
import tensorflow as tf

from tftransfer.methods import lp_ft, registry, wise_ft
from tftransfer.models.build import build

SHAPE = (10, 10, 1)
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make_model():
    return build("small_resnet", 3, "none", input_shape=SHAPE, seed=0,
                 arch_kwargs={"widths": (4, 8)}).model


class WiseFTTest(tf.test.TestCase):

    def setUp(self):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(16,) + SHAPE).astype(np.float32)
        self.y = rng.integers(0, 3, 16)
        self.model = make_model()
        lp_ft.linear_probe(self.model, (self.x, self.y), epochs=20, learning_rate=0.05)
        self.theta_0 = wise_ft.snapshot(self.model)
        self.out_0 = self.model(self.x, training=False).numpy()
        self.model.compile(keras.optimizers.SGD(0.1, momentum=0.9), LOSS)
        self.model.fit(self.x, self.y, epochs=3, batch_size=8, verbose=0)  # moves BN stats too
        self.theta_1 = wise_ft.snapshot(self.model)
        self.out_1 = self.model(self.x, training=False).numpy()

    def test_interpolation_matches_numpy_and_is_exact_at_the_ends(self):
        moved = [p for p in self.theta_0 if not np.array_equal(self.theta_0[p], self.theta_1[p])]
        self.assertIn("stem_bn/moving_mean", moved)
        self.assertIn("stem_conv/kernel", moved)
        for a in (0.25, 0.5, 0.9):
            mixed = wise_ft.interpolate(self.theta_0, self.theta_1, a)
            for path, value in mixed.items():
                want = (1 - a) * self.theta_0[path].astype(np.float64) + \
                    a * self.theta_1[path].astype(np.float64)
                self.assertAllClose(value, want, rtol=1e-6, atol=1e-7, msg=path)
                self.assertEqual(value.dtype, self.theta_1[path].dtype)
        for a, theta in ((0.0, self.theta_0), (1.0, self.theta_1)):
            mixed = wise_ft.interpolate(self.theta_0, self.theta_1, a)
            for path in theta:
                self.assertAllEqual(mixed[path], theta[path])

    def test_grid_evaluates_the_mixed_models_and_restores_theta_1(self):
        outputs = wise_ft.evaluate_grid(self.model, self.theta_0, self.theta_1,
                                        alphas=(0.0, 0.5, 1.0),
                                        evaluate=lambda m: m(self.x, training=False).numpy())
        self.assertEqual([a for a, _ in outputs], [0.0, 0.5, 1.0])
        self.assertAllEqual(outputs[0][1], self.out_0)
        self.assertAllEqual(outputs[2][1], self.out_1)
        other = make_model()  # an independent model set to the NumPy mix
        wise_ft.assign(other, {p: ((self.theta_0[p].astype(np.float64) + self.theta_1[p]) / 2)
                               .astype(self.theta_1[p].dtype) for p in self.theta_0})
        self.assertAllClose(outputs[1][1], other(self.x, training=False).numpy(), atol=1e-5)
        self.assertNotAllClose(outputs[1][1], self.out_0)
        for v in self.model.weights:
            self.assertAllEqual(v.numpy(), self.theta_1[v.path])

    def test_errors_and_registration(self):
        with self.assertRaisesRegex(ValueError, r"in \[0, 1\]"):
            wise_ft.interpolate(self.theta_0, self.theta_1, 1.5)
        partial = dict(self.theta_1)
        partial.pop("stem_conv/kernel")
        with self.assertRaisesRegex(ValueError, "different variables"):
            wise_ft.interpolate(self.theta_0, partial, 0.5)
        with self.assertRaisesRegex(ValueError, "no value"):
            wise_ft.assign(self.model, partial)
        self.assertEqual(registry.get("wise_ft").hyper_parameters, {"alpha": 0.5})


if __name__ == "__main__":
    tf.test.main()
