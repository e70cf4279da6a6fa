"""experiments/alpha_scale.py: the rule (penalty between 1% and 100% of the cross-entropy),
the table and the README section it rewrites, on hand-made measurements (the measurement
itself is the script's run)."""
import math
import os
from unittest import mock

import tensorflow as tf

from experiments import alpha_scale


class AlphaScaleTest(tf.test.TestCase):

    def test_ratio_is_of_the_means_over_the_window(self):
        data, penalties = [2.0, 2.0, 4.0, 1.0], [100.0, 1.0, 2.0, 3.0]
        self.assertAlmostEqual(alpha_scale.ratio(data, penalties, 2), (2.0 + 3.0) / (4.0 + 1.0))
        self.assertEqual(alpha_scale.ratio([1.0, math.nan], [1.0, 1.0], 2), math.inf)

    def test_search_range_applies_the_rule(self):
        ratios = {1e-4: 0.001, 1e-3: 0.01, 1e-2: 0.2, 1e-1: 1.0, 1.0: 3.0}
        self.assertEqual(alpha_scale.search_range(ratios), (1e-3, 1e-1))
        self.assertIsNone(alpha_scale.search_range({1e-3: 0.005, 1.0: math.inf}))

    def test_table(self):
        args = alpha_scale.parse_args(["--alphas", "0.001,1", "--steps", "2", "--window", "1"])
        measurements = {"l2_sp": {0.001: ([2.0, 2.0], [0.0, 0.04]),
                                  1.0: ([2.0, 2.0], [0.0, 4.0])},
                        "l1_sp": {0.001: ([2.0, 2.0], [0.0, 0.001]),
                                  1.0: ([2.0, math.nan], [0.0, 1.0])}}
        self.assertEqual(alpha_scale.table(args, measurements).splitlines(), [
            "| scheme | alpha range to search | alpha=0.001 | alpha=1 |",
            "|---|---|---|---|",
            "| `l2_sp` | 0.001 | 2% | 200% |",
            "| `l1_sp` | none of the grid | 0.05% | diverged |"])

    def test_write_replaces_the_readme_section(self):
        directory = self.get_temp_dir()
        readme = os.path.join(directory, "README.md")
        with open(readme, "w") as f:
            f.write(f"intro\n{alpha_scale.BEGIN}\nold table\n{alpha_scale.END}\nrest\n")
        args = alpha_scale.parse_args(["--write"])
        with mock.patch.object(alpha_scale, "README", readme), \
                mock.patch.object(alpha_scale, "DOC", os.path.join(directory, "a.md")):
            alpha_scale.write(args, "new table\n")
            alpha_scale.write(args, "newer table\n")  # idempotent: one section
        with open(readme) as f:
            self.assertEqual(f.read(), f"intro\n{alpha_scale.BEGIN}\nnewer table\n"
                                       f"{alpha_scale.END}\nrest\n")
        with open(os.path.join(directory, "a.md")) as f:
            self.assertIn("`python -m experiments.alpha_scale --write`", f.read())


if __name__ == "__main__":
    tf.test.main()
