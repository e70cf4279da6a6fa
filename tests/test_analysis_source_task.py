"""Source-task accuracy with the source head put back (through crop_accuracy, 1 or 10
crops), and the Fisher summary and boxplots."""
import os

import numpy as np
import pandas as pd
import tensorflow as tf

from tftransfer import fisher
from tftransfer.analysis import fisher_stats, plots, source_task
from tftransfer.analysis.cli import write_csv, write_png

from tests.analysis_testutil import assert_finite_csv, assert_png, load_tool, tiny_data, tiny_resnet


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class SourceTaskTest(tf.test.TestCase):

    def test_accuracy_matches_numpy(self):
        model = tiny_resnet(seed=1)
        x, y = tiny_data(n=20, seed=2)
        features = source_task.feature_model(model, "avg_pool")
        rng = np.random.default_rng(3)
        kernel = rng.normal(size=(8, 3)).astype("float32")
        bias = rng.normal(size=(3,)).astype("float32")
        h = features(x).numpy()
        expected = np.mean(np.argmax(h @ kernel + bias, axis=1) == y)
        head = source_task.dense_head(kernel, bias)
        got = source_task.source_accuracy(features, head, (x, y), batch_size=7)
        self.assertAllClose(got, expected)
        # Column labels [N, 1] are flattened, not broadcast.
        got = source_task.source_accuracy(features, head, (x, y[:, None]), batch_size=7)
        self.assertAllClose(got, expected)

    def test_ten_crops_average_probabilities(self):
        model = tiny_resnet(seed=1)
        features = source_task.feature_model(model, "avg_pool")
        rng = np.random.default_rng(4)
        crops = rng.normal(size=(6, 10, 8, 8, 1)).astype("float32") * 3
        y = np.arange(6) % 3
        kernel = rng.normal(size=(8, 3)).astype("float32")
        bias = rng.normal(size=(3,)).astype("float32")
        logits = features(crops.reshape(60, 8, 8, 1)).numpy() @ kernel + bias
        mean_p = _softmax(logits.astype(np.float64)).reshape(6, 10, 3).mean(1)
        expected = np.mean(np.argmax(mean_p, 1) == y)
        got = source_task.source_accuracy(features, source_task.dense_head(kernel, bias),
                                          (crops, y), batch_size=4)
        self.assertAllClose(got, expected)

    def test_drop_of_finetuned_backbone(self):
        source = tiny_resnet(seed=4)
        tuned = tiny_resnet(seed=4)
        tuned.get_layer("stage2_block1_2_conv").kernel.assign(
            np.random.default_rng(5).normal(size=(3, 3, 8, 8)).astype("float32"))
        x, y = tiny_data(n=30, seed=6)
        head = source_task.source_head(source, "predictions")
        kernel, bias = head.kernel.numpy(), head.bias.numpy()
        base = source_task.feature_model(source)
        same = source_task.source_accuracy_drop(base, base, head, (x, y))
        self.assertEqual(same["drop"], 0.0)
        # The pretrained accuracy is that of the source model itself.
        own = 100 * np.mean(np.argmax(source(x).numpy(), 1) == y)
        self.assertAllClose(same["pretrained"], own)
        moved = source_task.source_accuracy_drop(base, source_task.feature_model(tuned),
                                                 head, (x, y))
        tuned_acc = 100 * np.mean(
            np.argmax(source_task.feature_model(tuned)(x).numpy() @ kernel + bias, 1) == y)
        self.assertAllClose(moved["drop"], own - tuned_acc)

    def test_bad_head(self):
        model = tiny_resnet()
        features = source_task.feature_model(model)
        with self.assertRaisesRegex(ValueError, "features have width"):
            source_task.source_accuracy(
                features, source_task.dense_head(np.zeros((5, 3), "float32"),
                                                 np.zeros(3, "float32")), tiny_data(n=4))
        with self.assertRaisesRegex(ValueError, "bias"):
            source_task.dense_head(np.zeros((8, 3), "float32"), np.zeros(2, "float32"))
        with self.assertRaisesRegex(ValueError, "not a Dense head"):
            source_task.source_head(model, "avg_pool")
        with self.assertRaisesRegex(ValueError, "no examples"):
            source_task.source_accuracy(features, source_task.source_head(model),
                                        (np.zeros((0, 8, 8, 1), "float32"), np.zeros(0)))

    def test_tool(self):
        tmp = self.get_temp_dir()
        tiny_resnet(seed=7).save(os.path.join(tmp, "src.keras"))
        tiny_resnet(seed=8).save(os.path.join(tmp, "ft.keras"))
        x, y = tiny_data(n=9)
        np.savez(os.path.join(tmp, "val.npz"), x=x, y=y)
        png, csv = load_tool("source_drop").main([
            "--pretrained", os.path.join(tmp, "src.keras"),
            "--finetuned", "L2=" + os.path.join(tmp, "ft.keras"),
            "--data", os.path.join(tmp, "val.npz"), "--out_dir", tmp])
        assert_png(self, png)
        assert_finite_csv(self, csv, ["pretrained", "finetuned", "drop"])


class FisherPlotTest(tf.test.TestCase):

    def test_summary_and_plot(self):
        rng = np.random.default_rng(0)
        values = {"a/kernel": rng.lognormal(size=(3, 3, 2, 4)).astype("float32"),
                  "a/bias": rng.random(4).astype("float32"),
                  "b/kernel": np.concatenate([np.zeros(3), rng.lognormal(size=7)]).astype("float32")}
        tmp = self.get_temp_dir()
        summary = fisher_stats.fisher_summary(values)
        write_png(plots.plot_fisher(values, list(summary["path"])), os.path.join(tmp, "f.png"))
        write_csv(summary, os.path.join(tmp, "f.csv"))
        self.assertEqual(list(summary["path"]), ["a/kernel", "b/kernel"])
        row = summary.iloc[1]
        self.assertEqual(row["non_positive"], 3)
        self.assertAllClose(row["q50"], np.median(values["b/kernel"].astype(np.float64)))
        self.assertAllClose(row["mean"], np.mean(values["b/kernel"].astype(np.float64)))
        assert_png(self, os.path.join(tmp, "f.png"))
        frame = pd.read_csv(os.path.join(tmp, "f.csv"))
        self.assertEqual(len(frame), 2)

    def test_tool_on_real_fisher(self):
        model = tiny_resnet(seed=9)
        x, _ = tiny_data(n=6)
        tmp = self.get_temp_dir()
        path = fisher.save(os.path.join(tmp, "fisher.npz"), fisher.diagonal(model, x))
        png, csv = load_tool("plot_fisher").main(["--fisher", path, "--out_dir", tmp])
        assert_png(self, png)
        frame = assert_finite_csv(self, csv, ["mean", "q50"])
        self.assertEqual(list(frame["path"]),
                         [v.path for v in model.trainable_variables if v.path.endswith("kernel")])


if __name__ == "__main__":
    tf.test.main()
