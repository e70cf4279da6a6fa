"""tftransfer_cli/tables.py on hand-written results records: Table 2 and Table 5 layouts,
mean+-std over seeds, the paper's numbers and the differences, missing cells."""
import io
import json
import os
import tempfile
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import tensorflow as tf

from tftransfer_cli import tables as make_tables


def write_record(root, dataset, scheme, seed, accuracy, drop=None, crops=1):
    directory = os.path.join(root, dataset, f"{scheme}_{crops}", f"seed={seed}")
    os.makedirs(directory)
    record = {"flags": {"dataset": dataset, "scheme": scheme, "seed": seed,
                        "keep_aspect": crops == 10, "eval_crops": crops},
              "accuracy": accuracy, "eval_split": "test"}
    if drop is not None:
        record["source_drop"] = drop
    with open(os.path.join(directory, "results.json"), "w") as f:
        json.dump(record, f)


def table_rows(text):
    """The cells of every Markdown table row in ``text`` (separator rows left out)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|:- "):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def row_of(text, first):
    return " | ".join(next(r for r in table_rows(text) if r[0] == first))


class MakeTablesTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp()
        self.dogs = [0.741, 0.752, 0.749]
        for seed, accuracy in enumerate(self.dogs):
            write_record(self.root, "stanford_dogs120", "l2_sp", seed, accuracy,
                         drop=4.0 + seed)
        write_record(self.root, "stanford_dogs120", "l2_sp", 0, 0.77, crops=10)
        write_record(self.root, "synthetic", "l2", 0, 0.5, drop=1.5)

    def run_tool(self, *args):
        out = io.StringIO()
        with redirect_stdout(out):
            make_tables.main([self.root, *args])
        return out.getvalue()

    def test_markdown_layouts(self):
        text = self.run_tool("--format=markdown", "--tables=table2,table5")
        self.assertIn(["method", "Caltech-30", "Caltech-60", "Indoors", "Dogs", "Foods",
                       "synthetic"], table_rows(text))
        ours = 100 * np.array(self.dogs)
        expected = (f"{ours.mean():.1f}+-{ours.std(ddof=1):.1f} (paper 74.9+-0.2, "
                    f"diff {ours.mean() - 74.9:+.1f})")
        row = row_of(text, "L2-SP")
        self.assertIn(expected, row)
        self.assertIn("missing (paper 83.5+-0.1, diff -)", row)
        starred = row_of(text, "L2-SP*")
        self.assertIn("77.0 (paper 77.1+-0.2, diff -0.1)", starred)
        self.assertIn(["target", "L2", "L2-SP", "L2-SP-Fisher"], table_rows(text))
        dogs5 = row_of(text, "Dogs")
        self.assertIn("5.0+-1.0 (paper 4.7, diff +0.3)", dogs5)
        self.assertIn("missing (paper 14.1, diff -)", dogs5)
        synthetic5 = row_of(text, "synthetic")
        self.assertIn("1.5 (paper -, diff -)", synthetic5)

    def test_csv_numbers(self):
        out_dir = os.path.join(self.root, "tables")
        self.run_tool("--format=csv", f"--out_dir={out_dir}")
        table = pd.read_csv(os.path.join(out_dir, "table2.csv"))
        cell = table[(table.method == "L2-SP") & (table.dataset == "stanford_dogs120")].iloc[0]
        self.assertEqual(cell["runs"], 3)
        self.assertAllClose(cell["mean"], 100 * np.mean(self.dogs))
        self.assertAllClose(cell["std"], 100 * np.std(self.dogs, ddof=1))
        self.assertAllClose(cell["diff"], 100 * np.mean(self.dogs) - 74.9)
        self.assertLen(table, 6 * 6)
        self.assertTrue(os.path.exists(os.path.join(out_dir, "table5.md")))


def write_segmentation_record(root, dataset, head, scheme, seed, miou, **flags):
    directory = os.path.join(root, "seg", dataset, head, scheme, str(flags), f"seed={seed}")
    os.makedirs(directory)
    record = {"flags": {"task": "segmentation", "dataset": dataset, "seg_head": head,
                        "scheme": scheme, "seed": seed, "source": "imagenet", **flags},
              "mean_iou": miou, "accuracy": 0.99, "eval_split": "validation"}
    with open(os.path.join(directory, "results.json"), "w") as f:
        json.dump(record, f)


class Table4Test(tf.test.TestCase):
    """Segmentation records: Table 4 cells, the variants, and Table 2 left untouched."""

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp()
        self.psp = [0.781, 0.790, 0.772]
        for seed, miou in enumerate(self.psp):
            write_segmentation_record(self.root, "cityscapes", "pspnet", "l2_sp", seed, miou)
        write_segmentation_record(self.root, "cityscapes", "deeplab", "l2", 0, 0.70,
                                  source="custom")
        write_segmentation_record(self.root, "sbd", "pspnet", "l2", 0, 0.75)
        write_segmentation_record(self.root, "segmentation_folders", "pspnet", "l2_sp", 0,
                                  0.812, manual_dir="data/manual/cityscapes_extra/")
        write_segmentation_record(self.root, "scenes", "fcn", "l2", 0, 0.5)

    def run_tool(self, *args):
        out = io.StringIO()
        with redirect_stdout(out):
            make_tables.main([self.root, *args])
        return out.getvalue()

    def test_cells_beside_the_paper(self):
        text = self.run_tool("--format=markdown")
        ours = 100 * np.array(self.psp)
        rows = {(r[0], r[1]): r[2:] for r in table_rows(text) if len(r) == 4}
        l2, l2_sp = rows[("Cityscapes val", "PSPNet")]
        self.assertEqual(l2, "missing (paper 78.2, diff -)")
        self.assertEqual(l2_sp, f"{ours.mean():.1f}+-{ours.std(ddof=1):.1f} (paper 79.4, "
                                f"diff {ours.mean() - 79.4:+.1f})")
        self.assertEqual(rows[("Cityscapes val", "DeepLab-COCO")][0],
                         "70.0 (paper 72.0, diff -2.0)")
        self.assertEqual(rows[("Cityscapes val", "DeepLab")][0], "missing (paper 68.6, diff -)")
        self.assertEqual(rows[("SBD (VOC 2012 val)", "PSPNet")][0],
                         "75.0 (paper 78.3, diff -3.3)")
        self.assertEqual(rows[("scenes", "FCN")][0], "50.0 (paper -, diff -)")
        self.assertEqual(rows[("Cityscapes val", "PSPNet-extra")][1],
                         "81.2 (paper 81.2, diff +0.0)")
        self.assertNotIn("cityscapes", row_of(text, "method"))  # Table 2 keeps its columns

    def test_csv(self):
        out_dir = os.path.join(self.root, "tables")
        self.run_tool("--format=csv", f"--out_dir={out_dir}")
        table = pd.read_csv(os.path.join(out_dir, "table4.csv"))
        self.assertLen(table, 2 * (7 + 1))
        cell = table[(table.network == "pspnet") & (table.dataset == "cityscapes") &
                     (table.method == "L2-SP")].iloc[0]
        self.assertEqual(cell["runs"], 3)
        self.assertAllClose(cell["std"], 100 * np.std(self.psp, ddof=1))


if __name__ == "__main__":
    tf.test.main()
