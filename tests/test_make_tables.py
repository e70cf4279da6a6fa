"""experiments/make_tables.py on hand-written results records: Table 2 and Table 5 layouts,
mean+-std over seeds, the paper's numbers and the differences, missing cells."""
import io
import json
import os
import tempfile
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import tensorflow as tf

from experiments import make_tables


def write_record(root, dataset, scheme, seed, accuracy, drop=None, crops=1):
    directory = os.path.join(root, dataset, f"{scheme}_{crops}", f"seed={seed}")
    os.makedirs(directory)
    record = {"flags": {"dataset": dataset, "scheme": scheme, "seed": seed,
                        "keep_aspect": crops == 10, "eval_crops": crops},
              "accuracy": accuracy}
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
        text = self.run_tool("--format=markdown")
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


if __name__ == "__main__":
    tf.test.main()
