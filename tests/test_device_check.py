"""benchmarks/device_check.sh --cpu_smoke end to end, and bench_eval's ratio arithmetic."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import tensorflow as tf

from benchmarks import bench_eval, device_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKEN = "float32-noxla-no_such_scheme"  # fails inside its measurement: recorded, not fatal


class DeviceCheckSmokeTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="test_device_check_")
        cls.output_dir = os.path.join(cls.tmp, "device_check")
        cls.configs = list(device_check.SMOKE_CONFIGS) + [BROKEN]
        env = dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
        cls.process = subprocess.run(
            [os.path.join(ROOT, "benchmarks", "device_check.sh"), "--cpu_smoke",
             "--output_dir", cls.output_dir, "--configs", ",".join(cls.configs)],
            env=env, capture_output=True, text=True, timeout=300)
        path = os.path.join(cls.output_dir, "device_check.json")
        cls.report = json.load(open(path)) if os.path.exists(path) else None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.assertEqual(self.process.returncode, 0, self.process.stderr[-3000:])
        self.assertIsNotNone(self.report)

    def test_every_measurement_has_a_rate_or_an_error(self):
        results = self.report["results"]
        self.assertEqual(self.report["configs"], self.configs)
        for name in self.configs + ["input_pipeline", "eval_ten_crop"]:
            result = results[name]
            if "error" not in result:
                self.assertGreater(result["images_per_s"], 0, name)
        self.assertIn("no_such_scheme", results[BROKEN]["error"])

    def test_smoke_configurations_run_every_path(self):
        results = self.report["results"]
        for name in device_check.SMOKE_CONFIGS:
            self.assertNotIn("error", results[name], name)
            self.assertGreater(results[name]["images_per_s"], 0, name)
        self.assertEqual(results["mixed_float16-xla-none"]["optimizer"], "LossScaleOptimizer")
        self.assertEqual(results["mixed_bfloat16-noxla-l2_sp"]["compute_dtype"], "bfloat16")
        self.assertGreater(results["mixed_bfloat16-noxla-l2_sp"]["penalised_kernels"], 0)
        self.assertEqual(results["float32-noxla-none"]["penalised_kernels"], 0)
        self.assertEqual(results["mixed_float16-xla-none"]["penalised_kernels"], 0)
        self.assertGreater(results["input_pipeline"]["images_per_s"], 0)
        self.assertGreater(results["eval_ten_crop"]["center_images_per_s"], 0)

    def test_report_names_the_device_versions_and_command(self):
        env = self.report["environment"]
        self.assertTrue(env["device"])
        self.assertEqual(env["tensorflow"], tf.__version__)
        self.assertIn("--cpu_smoke", self.report["command"])
        self.assertGreater(self.report["elapsed_s"], 0)
        table = open(os.path.join(self.output_dir, "device_check.md")).read()
        self.assertIn(env["device"], table)
        self.assertIn("| mixed_float16 | on | none |", table)
        self.assertEqual(table.strip(), device_check.markdown(self.report).strip())

    def test_from_json_renders_without_measuring(self):
        report = device_check.main(["--from_json",
                                    os.path.join(self.output_dir, "device_check.json")])
        self.assertEqual(report, self.report)


class ConfigNameTest(tf.test.TestCase):

    def test_parse(self):
        self.assertEqual(device_check.parse_config("mixed_bfloat16-xla-l2_sp"),
                         ("mixed_bfloat16", True, "l2_sp"))
        self.assertEqual(device_check.parse_config("float32-noxla-none"),
                         ("float32", False, "none"))

    def test_malformed_name_is_rejected(self):
        with self.assertRaisesRegex(ValueError, "precision-xla"):
            device_check.parse_config("float32-jit-none")


class BenchEvalArithmeticTest(tf.test.TestCase):

    def test_abba_order(self):
        self.assertEqual(bench_eval.abba_order(3),
                         ["center", "ten", "ten", "center", "center", "ten"])

    def test_summary_is_median_of_pair_ratios(self):
        times = {"center": [1.0, 2.0, 4.0], "ten": [9.0, 30.0, 40.0]}
        summary = bench_eval.summarize(times, num_images=8)
        self.assertAllClose(summary["ratios"], [9.0, 15.0, 10.0])
        self.assertAllClose(summary["ratio"], 10.0)
        self.assertAllClose(summary["center_s"], 2.0)
        self.assertAllClose(summary["ten_images_per_s"], 8 / 30.0)

    def test_cpu_ratio_is_median_of_cpu_pair_ratios(self):
        times = {"center": [1.0, 1.0], "ten": [20.0, 20.0]}
        cpu = {"center": [2.0, 1.0], "ten": [19.0, 11.0]}
        summary = bench_eval.summarize(times, num_images=1, cpu_times=cpu)
        self.assertAllClose(summary["cpu_ratios"], [9.5, 11.0])
        self.assertAllClose(summary["cpu_ratio"], 10.25)
        self.assertAllClose(summary["ratio"], 20.0)

    def test_unpaired_timings_are_rejected(self):
        with self.assertRaisesRegex(ValueError, "as many"):
            bench_eval.pair_ratios({"center": [1.0], "ten": [1.0, 2.0]})


if __name__ == "__main__":
    tf.test.main()
