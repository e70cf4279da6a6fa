"""The segmentation study's report, figure and selection rule on small hand-made records:
numbers from the CSV files (mean and sample std checked against NumPy), the two-SE words
whichever method wins, alpha chosen on validation records only, the examples file."""
import dataclasses
import os

import numpy as np
import pandas as pd
import tensorflow as tf

from experiments.scene_study import examples as examples_lib
from experiments.scene_study import figure, protocol, report, selection, tables

CLASSES = {"seen": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"],
           "unseen": ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]}


def _fake_study(directory, means, std=0.01, seeds=3, seed=0):
    """Writes the study's tables with test mIoU ~ N(means[(target, method)], std) per seed;
    returns the runs frame."""
    rng = np.random.default_rng(seed)
    rows, sel = [], []
    for (target, method), mean in means.items():
        alpha = 0.0 if method == "none" else 0.01
        for s in range(1, seeds + 1):
            row = dict(target=target, method=method, alpha=alpha, beta=0.01, seed=s,
                       test_miou=mean + std * rng.standard_normal(),
                       pixel_accuracy=rng.uniform(0.8, 0.9), num_test=200, steps=300,
                       train_time_s=1.0)
            for name in ["background"] + CLASSES[target]:
                row[f"iou:{name}"] = rng.uniform(0.3, 0.9)
            rows.append(row)
        if method != "none":
            for a in (1e-3, 1e-2, 0.1):
                sel.append(dict(target=target, method=method, alpha=a, beta=0.01,
                                val_miou=rng.uniform(0.4, 0.6), val_pixel_accuracy=0.8,
                                num_val=90))
    settings = dataclasses.asdict(protocol.Settings(seeds=seeds))
    tables.write(directory, {
        "runs": rows, "selection": sel,
        "sources": [dict(split="far", source_classes="0 1 2 3 4", train_images=30000,
                         steps=470, source_test_accuracy=0.89, train_time_s=100.0)]},
        {"command": "python -m experiments.scene_study", "settings": settings,
         "wall_time_s": 600.0, "phase_seconds": [["source", 60.0], ["finals", 300.0]],
         "runs_trained": 30, "runs_reused": 0, "run_seconds": 900.0, "cpu_count": 2, "class_names": CLASSES})
    return pd.DataFrame(rows)


def _cells(text):
    """``{(method label, column): cell}`` of the page's results table."""
    block = text.split("## Results")[1].split("\n\n")[2]
    lines = block.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = {}
    for line in lines[2:]:
        parts = [p.strip() for p in line.strip("|").split("|")]
        for name, cell in zip(header[1:], parts[1:]):
            cells[(parts[0], name)] = cell
    return cells


def _bullet(text, target_title):
    return [l for l in text.splitlines() if l.startswith(f"- **scenes of {target_title}**")][0]


class ReportTest(tf.test.TestCase):

    def test_table_is_mean_and_sample_std_with_the_seed_count(self):
        directory = self.get_temp_dir()
        means = {(t, m): 0.5 for t in ("seen", "unseen") for m in protocol.METHODS}
        runs = _fake_study(directory, means, std=0.03)
        text = open(report.write_report(directory)).read()
        cells = _cells(text)
        for (target, method), group in runs.groupby(["target", "method"]):
            v = 100 * group["test_miou"].to_numpy()
            std = np.sqrt(((v - v.sum() / len(v)) ** 2).sum() / (len(v) - 1))
            cell = cells[(report.label(method), f"mIoU, {report.TITLES[target]}")]
            self.assertTrue(cell.startswith(f"{v.mean():.2f} ± {std:.2f}"), (cell, v))
        caption = text.split("## Results")[1].split("\n\n")[1]
        self.assertIn("over 3 seeds", caption)
        self.assertIn("Test mIoU (%), mean over 3 seeds", text)
        self.assertIn("IoU per class (%), scenes of other classes", text)
        self.assertIn("Validation mIoU (%) of each alpha", text)

    def test_words_follow_the_two_standard_error_rule_whichever_method_wins(self):
        directory = self.get_temp_dir()
        # Seen: L2 far above L2-SP (the paper's opposite); unseen: every gap within noise.
        means = {("seen", "none"): 0.50, ("seen", "l2"): 0.70, ("seen", "l2_sp"): 0.55,
                 ("unseen", "none"): 0.50, ("unseen", "l2"): 0.50, ("unseen", "l2_sp"): 0.505}
        _fake_study(directory, means, std=0.02)
        text = open(report.write_report(directory)).read()
        seen = _bullet(text, "source classes")
        self.assertIn("highest mean L2 (", seen)
        self.assertRegex(seen, r"L2-SP [\d.]+ is lower than L2 [\d.]+")
        unseen = _bullet(text, "other classes")
        self.assertRegex(unseen, r"L2-SP [\d.]+ vs L2 [\d.]+: no clear difference")
        self.assertIn("does not reproduce that gain on any target", text)
        self.assertIn("L2-SP did worse than L2", text)
        # The summary's words, recomputed here from the CSV with NumPy and the two-SE rule.
        runs = pd.read_csv(os.path.join(directory, tables.csv_name("runs")))
        expected = {}
        for target in ("seen", "unseen"):
            a, b = (100 * runs[(runs["target"] == target) & (runs["method"] == m)]
                    ["test_miou"].to_numpy() for m in ("l2_sp", "none"))
            d = a.mean() - b.mean()
            se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            word = ("no clear difference" if abs(d) <= 2 * se else
                    "higher" if d > 0 else "lower")
            expected.setdefault(word, []).append(report.TITLES[target])
        summary = "; ".join(f"{w} on the scenes of {' and of '.join(v)}"
                            for w, v in expected.items())
        self.assertIn(f"L2-SP against plain fine-tuning: {summary} (", text)
        self.assertNotIn("agrees with it on every target", text)

    def test_agreement_is_said_only_when_every_target_clears_two_se(self):
        directory = self.get_temp_dir()
        means = {(t, m): v for t in ("seen", "unseen")
                 for m, v in (("none", 0.5), ("l2", 0.5), ("l2_sp", 0.6))}
        _fake_study(directory, means, std=0.01)
        text = open(report.write_report(directory)).read()
        self.assertIn("This study agrees with it on every target.", text)
        self.assertRegex(_bullet(text, "other classes"),
                         r"L2-SP [\d.]+ is higher than L2 [\d.]+")

    def test_page_is_redrawn_identically_with_the_figure(self):
        directory = self.get_temp_dir()
        means = {(t, m): 0.5 for t in ("seen", "unseen") for m in protocol.METHODS}
        _fake_study(directory, means)
        rng = np.random.default_rng(1)
        fake = {t: {"images": rng.integers(0, 256, (2, 16, 16)),
                    "truth": rng.integers(0, 6, (2, 16, 16)), "class_names": CLASSES[t],
                    "predictions": {m: rng.integers(0, 6, (2, 16, 16))
                                    for m in protocol.METHODS}}
                for t in ("seen", "unseen")}
        examples_lib.save(os.path.join(directory, tables.EXAMPLES), fake, protocol.METHODS)
        text = open(report.write_report(directory)).read()
        self.assertIn(f"![predicted masks]({tables.FIGURE})", text)
        png = os.path.join(directory, tables.FIGURE)
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertEqual(open(report.write_report(directory)).read(), text)


class ExamplesTest(tf.test.TestCase):

    def test_round_trip(self):
        rng = np.random.default_rng(0)
        fake = {"seen": {"images": rng.integers(0, 256, (2, 8, 8)),
                         "truth": rng.integers(0, 6, (2, 8, 8)), "class_names": ["a", "b"],
                         "predictions": {"none": rng.integers(0, 6, (2, 8, 8)),
                                         "l2_sp": rng.integers(0, 6, (2, 8, 8))}}}
        path = examples_lib.save(os.path.join(self.get_temp_dir(), "e.npz"), fake,
                                 ["none", "l2_sp"])
        back, methods = examples_lib.load(path)
        self.assertEqual(methods, ["none", "l2_sp"])
        self.assertEqual(back["seen"]["class_names"], ["a", "b"])
        self.assertAllEqual(back["seen"]["truth"], fake["seen"]["truth"])
        self.assertAllEqual(back["seen"]["predictions"]["l2_sp"],
                            fake["seen"]["predictions"]["l2_sp"])

    def test_colours_and_pixel_accuracy(self):
        mask = np.array([[0, 1], [2, 0]])
        rgb = figure.colourise(mask, 3)
        self.assertAllEqual(rgb[0, 0], [0, 0, 0])
        self.assertNotAllClose(rgb[0, 1], rgb[1, 0])
        self.assertAllClose(figure.pixel_accuracy(mask, np.array([[0, 1], [0, 0]])), 0.75)


def _record(miou, alpha, split="validation"):
    return {"mean_iou": miou, "eval_split": split, "flags": {"alpha": alpha},
            "output_dir": f"run_{alpha}"}


class SelectionTest(tf.test.TestCase):

    def test_best_validation_miou_ties_to_the_smaller_alpha(self):
        records = [_record(0.4, 0.1), _record(0.6, 0.01), _record(0.6, 0.001)]
        self.assertEqual(selection.choose(records), 0.001)
        self.assertEqual(selection.choose(records[:2]), 0.01)

    def test_refuses_test_records_and_records_without_miou(self):
        with self.assertRaisesRegex(ValueError, "only validation accuracies"):
            selection.choose([_record(0.4, 0.1), _record(0.9, 0.01, split="test")])
        with self.assertRaisesRegex(ValueError, "no finite 'mean_iou'"):
            selection.choose([{"accuracy": 0.5, "eval_split": "validation",
                               "flags": {"alpha": 0.1}}])


if __name__ == "__main__":
    tf.test.main()
