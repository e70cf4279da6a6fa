"""Feature spectra, probe vs fine-tune across checkpoints, and the t-SNE weight map."""
import os

import numpy as np
import tensorflow as tf

from tftransfer.analysis import source_task, spectrum, weight_map

from tests.analysis_testutil import assert_finite_csv, assert_png, load_tool, tiny_data, tiny_resnet


class SpectrumTest(tf.test.TestCase):

    def test_singular_values_match_numpy(self):
        model = tiny_resnet(seed=1)
        x, _ = tiny_data(n=15)
        features = source_task.feature_model(model, "avg_pool")
        matrix = spectrum.feature_matrix(features, x, batch_size=4)
        h = features(x).numpy().astype(np.float64)
        self.assertAllClose(matrix, h, rtol=1e-6)
        expected = np.linalg.svd(h - h.mean(0), compute_uv=False)
        self.assertAllClose(spectrum.singular_values(matrix), expected, rtol=1e-8)
        self.assertAllClose(spectrum.singular_values(matrix, center=False),
                            np.linalg.svd(h, compute_uv=False), rtol=1e-8)

    def test_tool_with_transfer(self):
        tmp = self.get_temp_dir()
        for i in (1, 2):
            tiny_resnet(seed=i).save(os.path.join(tmp, f"c{i}.keras"))
        x, y = tiny_data(n=12, seed=3)
        np.savez(os.path.join(tmp, "train.npz"), x=x[:8], y=y[:8])
        np.savez(os.path.join(tmp, "test.npz"), x=x[8:], y=y[8:])
        outputs = load_tool("spectrum").main([
            "--checkpoint", "e1=" + os.path.join(tmp, "c1.keras"),
            "--checkpoint", "e2=" + os.path.join(tmp, "c2.keras"),
            "--train", os.path.join(tmp, "train.npz"), "--test", os.path.join(tmp, "test.npz"),
            "--out_dir", tmp, "--epochs", "1", "--batch_size", "4"])
        spec_png, spec_csv, transfer_png, transfer_csv = outputs
        assert_png(self, spec_png)
        assert_png(self, transfer_png)
        spec = assert_finite_csv(self, spec_csv, ["singular_value", "normalized"])
        self.assertEqual(set(spec["checkpoint"]), {"e1", "e2"})
        transfer = assert_finite_csv(self, transfer_csv, ["probe_accuracy", "finetune_accuracy"])
        self.assertEqual(list(transfer["checkpoint"]), ["e1", "e2"])
        self.assertTrue(np.all((transfer[["probe_accuracy", "finetune_accuracy"]] >= 0) &
                               (transfer[["probe_accuracy", "finetune_accuracy"]] <= 1)))


class WeightMapTest(tf.test.TestCase):

    def test_groups_are_separated(self):
        rng = np.random.default_rng(0)
        centres = {"pretrained": rng.normal(size=(3, 3, 2, 4)), "random": rng.normal(size=(3, 3, 2, 4))}
        labels, weights = [], []
        for label, centre in centres.items():
            for _ in range(8):
                labels.append(label)
                weights.append(10 * centre + 0.1 * rng.normal(size=centre.shape))
        frame = weight_map.weight_map(labels, weights, perplexity=4.0)
        xy = frame[["x", "y"]].to_numpy()
        distances = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy)) * 1e9
        nearest = np.argmin(distances, axis=1)
        self.assertTrue(all(labels[i] == labels[j] for i, j in enumerate(nearest)))

    def test_bad_perplexity(self):
        with self.assertRaisesRegex(ValueError, "perplexity"):
            weight_map.embed([np.zeros(3)] * 4, perplexity=10)

    def test_tool(self):
        tmp = self.get_temp_dir()
        args = []
        for i in range(4):
            path = os.path.join(tmp, f"m{i}.keras")
            tiny_resnet(seed=i).save(path)
            args += ["--run", f"{'a' if i < 2 else 'b'}={path}"]
        png, csv = load_tool("weight_map").main(
            args + ["--variable", "stem_conv/kernel", "--perplexity", "2", "--out_dir", tmp])
        assert_png(self, png)
        self.assertEqual(len(assert_finite_csv(self, csv, ["x", "y"])), 4)


if __name__ == "__main__":
    tf.test.main()
