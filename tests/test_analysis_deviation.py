"""The weight-deviation callback ||W - W0||_F / sqrt(n) on the small ResNet."""
import os

import numpy as np
import tensorflow as tf

from tftransfer.analysis import deviation, plots
from tftransfer.analysis.cli import fit_sgd, write_csv, write_png
from tftransfer.variables import select_variables

from tests.analysis_testutil import assert_finite_csv, assert_png, load_tool, tiny_data, tiny_resnet


class WeightDeviationTest(tf.test.TestCase):

    def test_callback_on_small_resnet(self):
        model = tiny_resnet(seed=1)
        start = {v.path: v.numpy().copy() for v in model.trainable_variables}
        x, y = tiny_data(n=16)
        tmp = self.get_temp_dir()
        csv, png = os.path.join(tmp, "dev.csv"), os.path.join(tmp, "dev.png")
        callback = deviation.WeightDeviation(every_n_batches=2)
        fit_sgd(model, x, y, epochs=2, learning_rate=0.05, batch_size=4, callbacks=[callback])
        write_csv(callback.frame(), csv)
        write_png(plots.plot_deviation(callback.frame()), png)
        frame = assert_finite_csv(self, csv, ["step", "deviation"])
        assert_png(self, png)
        kernels = [v.path for v in model.trainable_variables if v.path.endswith("kernel")]
        self.assertEqual(list(dict.fromkeys(frame["path"])), kernels)
        self.assertEqual(sorted(set(frame["step"])), [0, 2, 4, 6, 8])
        self.assertAllEqual(frame[frame["step"] == 0]["deviation"], np.zeros(len(kernels)))
        last = frame[frame["step"] == 8].set_index("path")["deviation"]
        for v in model.trainable_variables:
            if v.path in kernels:
                diff = v.numpy().astype(np.float64) - start[v.path]
                self.assertAllClose(last[v.path], np.sqrt(np.mean(diff ** 2)), rtol=1e-6)
                self.assertGreater(last[v.path], 0.0)

    def test_unknown_path(self):
        with self.assertRaisesRegex(ValueError, "unknown variable paths"):
            select_variables(tiny_resnet(), ["nope/kernel"])

    def test_tool(self):
        tmp = self.get_temp_dir()
        tiny_resnet(seed=2).save(os.path.join(tmp, "start.keras"))
        x, y = tiny_data(n=8)
        np.savez(os.path.join(tmp, "train.npz"), x=x, y=y)
        png, csv = load_tool("weight_deviation").main([
            "--model", os.path.join(tmp, "start.keras"), "--data", os.path.join(tmp, "train.npz"),
            "--out_dir", tmp, "--epochs", "1", "--batch_size", "4"])
        assert_png(self, png)
        assert_finite_csv(self, csv, ["deviation"])


if __name__ == "__main__":
    tf.test.main()
