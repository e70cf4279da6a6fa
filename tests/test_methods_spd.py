"""SPD (Tian et al. 2024) against a NumPy computation of its rule.

Per variable, with d = W_{t-1} - W0, the base step W~ and the gradient g:
  c = -<g, d>;  if c < 0: r = clip((||W~ - W0|| - ||d||) / ||W~ - W0||, 0, 1),
                          W_t = W~ - lambda * r * (W~ - W0);  else W_t = W~.
The starting points are chosen per variable so that the rule selects some and not others:
  selected: d = lr*g/4 + (a part orthogonal to g)  (c < 0 and the step moves away: r > 0)
  left:     d = -g                                  (c > 0)
  the rest: d = 0                                   (c = 0)
"""
import keras
import numpy as np
import tensorflow as tf

from tftransfer.methods import registry, spd
from tftransfer.models.build import build

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
SHAPE = (10, 10, 1)
LR = 0.1
STRENGTH = 0.7
SELECTED = ("stem_conv/kernel", "stage2_block1_2_conv/kernel", "predictions/kernel")
LEFT = ("stage1_block1_1_conv/kernel", "predictions/bias", "stem_bn/gamma")


def make_model():
    return build("small_resnet", 3, "none", input_shape=SHAPE, seed=0,
                 arch_kwargs={"widths": (4, 8)}).model


def np_spd(before, stepped, g, w0, strength):
    c = -np.sum(g * (before - w0))
    if c >= 0:
        return stepped, False, 0.0
    new, old = np.linalg.norm(stepped - w0), np.linalg.norm(before - w0)
    r = np.clip((new - old) / new, 0.0, 1.0) if new > 0 else 0.0
    return stepped - strength * r * (stepped - w0), True, r


class SPDRuleTest(tf.test.TestCase):

    def setup_model(self):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(1)
        model = make_model()
        x = rng.normal(size=(8,) + SHAPE).astype(np.float32)
        y = rng.integers(0, 3, 8)
        with tf.GradientTape() as tape:
            loss = LOSS(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        g = {v.path: t.numpy().astype(np.float64) for v, t in zip(model.trainable_variables, grads)}
        theta = {v.path: v.numpy().astype(np.float64) for v in model.trainable_variables}
        w0 = {}
        for path, value in theta.items():
            if path in SELECTED:
                noise = rng.normal(size=value.shape)
                noise -= np.sum(noise * g[path]) / np.sum(g[path] ** 2) * g[path]
                d = LR * g[path] / 4 + 0.1 * np.linalg.norm(LR * g[path]) * noise / \
                    np.linalg.norm(noise)
            elif path in LEFT:
                d = -g[path]
            else:
                d = np.zeros_like(value)
            w0[path] = (value - d).astype(np.float32)
        return model, x, y, g, theta, w0

    def check(self, base, step):
        model, x, y, g, theta, w0 = self.setup_model()
        optimizer = spd.with_spd(base, model, strength=STRENGTH, starting_point=w0)
        model.compile(optimizer, LOSS, jit_compile=False)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        decayed_paths, ratios = set(), []
        for i, v in enumerate(model.trainable_variables):
            stepped = step(theta[v.path], g[v.path])
            ref = w0[v.path].astype(np.float64)
            want, decayed, r = np_spd(theta[v.path], stepped, g[v.path], ref, STRENGTH)
            self.assertAllClose(v.numpy(), want, rtol=1e-4, atol=1e-6, msg=v.path)
            self.assertEqual(bool(optimizer.spd_decayed[i].numpy()), decayed, v.path)
            if decayed:
                decayed_paths.add(v.path)
                ratios.append(r)
        self.assertEqual(decayed_paths, set(SELECTED))
        return ratios

    def test_sgd_decays_only_the_selected_layers(self):
        ratios = self.check(keras.optimizers.SGD(LR), lambda w, g: w - LR * g)
        self.assertTrue(all(0.0 < r < 1.0 for r in ratios), ratios)  # a real pull back

    def test_adam_step_then_the_rule(self):
        # eps = 1e-3, not Keras' 1e-7: with 1e-7 the first Adam step LR * g / (|g| + eps')
        # is ill-conditioned for gradient entries near 1e-6 (one here is 4.4e-6), so the
        # last-bit difference between the tape's gradient and fit's flips the comparison
        # (CI saw 1.1e-4 on one entry). With 1e-3 the step is smooth in g and still far
        # from an SGD step (sqrt(v) ~ eps for the typical entry).
        b1, b2, eps = 0.9, 0.999, 1e-3

        def adam_first_step(w, g):
            m, v = (1 - b1) * g, (1 - b2) * g * g
            return w - LR * np.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + eps)

        self.check(keras.optimizers.Adam(LR, beta_1=b1, beta_2=b2, epsilon=eps),
                   adam_first_step)

    def test_no_decay_at_the_starting_point_and_zero_strength_is_the_base(self):
        model, x, y, g, theta, _ = self.setup_model()
        optimizer = spd.with_spd(keras.optimizers.SGD(LR, momentum=0.9), model, strength=0.0)
        model.compile(optimizer, LOSS, jit_compile=False)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        for i, v in enumerate(model.trainable_variables):
            self.assertAllClose(v.numpy(), theta[v.path] - LR * g[v.path], rtol=1e-4, atol=1e-6)
            self.assertEqual(float(optimizer.spd_decayed[i].numpy()), 0.0)  # c = 0 at W0

    def test_under_a_mirrored_strategy(self):
        model, x, y, g, theta, w0 = self.setup_model()
        strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
        with strategy.scope():
            mirrored = make_model()
            mirrored.set_weights(model.get_weights())
            optimizer = spd.with_spd(keras.optimizers.SGD(LR), mirrored, strength=STRENGTH,
                                     starting_point=w0)
            mirrored.compile(optimizer, LOSS, jit_compile=False)
        mirrored.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        for i, v in enumerate(mirrored.trainable_variables):
            want, decayed, _ = np_spd(theta[v.path], theta[v.path] - LR * g[v.path], g[v.path],
                                      w0[v.path].astype(np.float64), STRENGTH)
            self.assertAllClose(v.numpy(), want, rtol=1e-4, atol=1e-6, msg=v.path)
            self.assertEqual(bool(optimizer.spd_decayed[i].numpy()), decayed, v.path)

    def test_helper_rule_matches_numpy_on_arrays(self):
        rng = np.random.default_rng(5)
        for _ in range(20):
            before, stepped, g, w0 = (rng.normal(size=(4, 3)) for _ in range(4))
            got, decayed = spd.spd_update(before, stepped, g, w0, 0.5)
            want, want_decayed, _ = np_spd(before, stepped, g, w0, 0.5)
            self.assertAllClose(got, want, rtol=1e-6)
            self.assertEqual(bool(decayed), want_decayed)
        same = np.ones((2, 2))
        got, _ = spd.spd_update(same - 1.0, same, -same, same, 0.5)  # ||W~ - W0|| = 0
        self.assertAllClose(got, same)

    def test_config_weight_decay_and_registration(self):
        model = make_model()
        optimizer = spd.with_spd(keras.optimizers.Adam(1e-3), model, strength=0.3,
                                 paths=["stem_conv/kernel"])
        self.assertEqual(type(optimizer).__name__, "SPDAdam")
        restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        self.assertEqual((restored.spd_strength, restored.spd_paths), (0.3, ["stem_conv/kernel"]))
        with self.assertRaisesRegex(ValueError, "bind"):
            restored.build(model.trainable_variables)
        with self.assertRaisesRegex(ValueError, "replaces weight decay"):
            spd.with_spd(keras.optimizers.AdamW(1e-3, weight_decay=0.01), model)
        self.assertEqual(registry.get("spd").hyper_parameters, {"strength": spd.DEFAULT_STRENGTH})


if __name__ == "__main__":
    tf.test.main()
