"""The CPU study report's statistics convention (sample std, ddof=1), its Markdown tables
and the published numbers it quotes, checked against NumPy and the paper's table."""
import numpy as np
import pandas as pd
import tensorflow as tf

from tftransfer_cli import published
from experiments.cpu_study.report import common, source_drop


class StatisticsTest(tf.test.TestCase):

    def test_stats_is_mean_and_sample_std(self):
        values = np.array([0.81, 0.84, 0.79, np.nan])
        mean, std, n = common.stats(pd.DataFrame({"test_accuracy": values}))
        kept = 100 * values[:3]
        self.assertEqual(n, 3)
        self.assertAllClose(mean, kept.sum() / 3)
        self.assertAllClose(std, np.sqrt(np.sum((kept - kept.mean()) ** 2) / 2))
        self.assertEqual(common.stats(pd.DataFrame({"test_accuracy": [0.5]}))[1], 0.0)

    def test_two_standard_error_rule(self):
        a, b = (80.0, 2.0, 4), (78.5, 1.0, 4)
        se = np.sqrt(2.0 ** 2 / 4 + 1.0 ** 2 / 4)
        d, got_se, word = common.compare(a, b)
        self.assertAllClose((d, got_se), (1.5, se))
        self.assertEqual(word, "no clear difference")  # 1.5 < 2 * 1.118
        self.assertEqual(common.compare((80.0, 0.5, 4), b)[2], "higher")

    def test_table_keeps_cells_verbatim(self):
        text = common.table(["method", "far split"], [["L2", "85.10 ± 0.20 (0.1)"], ["x", 7]])
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()]
        self.assertEqual(rows[0], ["method", "far split"])
        self.assertEqual(rows[2:], [["L2", "85.10 ± 0.20 (0.1)"], ["x", "7"]])


class PublishedTest(tf.test.TestCase):

    def test_lookups_and_quote(self):
        self.assertLen(published.TABLE2, 3 * 2 * 5)
        self.assertEqual(published.table2("l2_sp", "stanford_dogs120"), (74.9, 0.2))
        self.assertIsNone(published.table2("l2", "synthetic"))
        self.assertEqual(published.table5("l2", "stanford_dogs120"), 14.1)
        self.assertEqual(published.table5_example(), "14.1 vs 4.7 points on Dogs")

    def test_source_drop_section_quotes_the_table(self):
        runs = pd.DataFrame({"experiment": "main", "split": "far", "method": ["l2", "l2"],
                             "seed": [1, 2], "source_drop": [3.0, 5.0],
                             "source_accuracy_before": [0.9, 0.9]})
        t = {"runs": runs, "study": {"settings": {"methods": ["l2"],
                                                  "source_eval_examples": 123}}}
        lines, figures = source_drop.section(t)
        text = "\n".join(lines)
        self.assertEqual(figures, {})
        self.assertIn("14.1 vs 4.7 points on Dogs", text)
        self.assertIn("over 2 seeds", text)
        self.assertIn("on 123 source test images", text)
        self.assertIn(f"4.0 ± {np.std([3.0, 5.0], ddof=1):.1f}", text)


if __name__ == "__main__":
    tf.test.main()
