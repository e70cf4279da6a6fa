"""Layer-wise R^2 (tftransfer.analysis.r2) against NumPy least squares."""
import os

import numpy as np
import tensorflow as tf

from tftransfer.analysis import r2

from tests.analysis_testutil import assert_finite_csv, assert_png, load_tool, tiny_data, tiny_resnet


def _np_r2(x, y):
    """R^2 of y ~ a x + b by numpy.linalg.lstsq (1 - SS_res / SS_tot)."""
    design = np.stack([x, np.ones_like(x)], axis=1)
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    ss_res = np.sum((y - design @ coef) ** 2)
    ss_tot = np.sum((y - y.mean()) ** 2)
    return 1.0 - ss_res / ss_tot


class LayerR2Test(tf.test.TestCase):

    def test_unchanged_model_gives_one(self):
        model = tiny_resnet(seed=1)
        x, _ = tiny_data(n=10)
        result = r2.layer_r2(model, model, x, batch_size=4)
        self.assertEqual(list(result), ["stem_relu", "stage1_block1_out", "stage2_block1_out"])
        for layer, values in result.items():
            self.assertEqual(values.shape, (model.get_layer(layer).output.shape[-1],))
            self.assertAllClose(values, np.ones_like(values), atol=1e-9, msg=layer)

    def test_perturbed_model_matches_least_squares(self):
        pretrained, finetuned = tiny_resnet(seed=2), tiny_resnet(seed=2)
        rng = np.random.default_rng(3)
        for v in finetuned.trainable_variables:
            v.assign(v.numpy() + 0.3 * rng.normal(size=v.shape).astype("float32"))
        x, _ = tiny_data(n=12, seed=4)
        layers = ["stem_relu", "stage2_block1_out"]
        result = r2.layer_r2(pretrained, finetuned, x, layers, batch_size=5)
        acts = r2.activation_model(pretrained, layers)(x), r2.activation_model(finetuned, layers)(x)
        checked = 0
        for layer, a, b in zip(layers, *acts):
            a = a.numpy().astype(np.float64).reshape(-1, a.shape[-1])
            b = b.numpy().astype(np.float64).reshape(-1, b.shape[-1])
            for unit in range(a.shape[1]):
                if np.var(b[:, unit]) < 1e-12 or np.var(a[:, unit]) < 1e-12:
                    continue  # degenerate unit: covered by the conventions, not by lstsq
                self.assertAllClose(result[layer][unit], _np_r2(a[:, unit], b[:, unit]),
                                    atol=1e-6, msg=f"{layer}[{unit}]")
                checked += 1
        self.assertGreater(checked, 4)
        self.assertLess(np.nanmin(np.concatenate(list(result.values()))), 0.999)

    def test_unknown_layer(self):
        model = tiny_resnet()
        with self.assertRaisesRegex(ValueError, "not in model"):
            r2.layer_r2(model, model, np.zeros((2, 8, 8, 1), "float32"), ["nope"])

    def test_tool_writes_png_and_csv(self):
        tmp = self.get_temp_dir()
        pre, ft = tiny_resnet(seed=5), tiny_resnet(seed=6)
        pre.save(os.path.join(tmp, "pre.keras"))
        ft.save(os.path.join(tmp, "ft.keras"))
        x, y = tiny_data(n=8)
        np.savez(os.path.join(tmp, "data.npz"), x=x, y=y)
        png, csv = load_tool("layer_r2").main([
            "--pretrained", os.path.join(tmp, "pre.keras"),
            "--finetuned", "L2=" + os.path.join(tmp, "ft.keras"),
            "--data", os.path.join(tmp, "data.npz"), "--out_dir", os.path.join(tmp, "out")])
        assert_png(self, png)
        frame = assert_finite_csv(self, csv, ["r2"])
        self.assertEqual(set(frame["model"]), {"L2"})


if __name__ == "__main__":
    tf.test.main()
