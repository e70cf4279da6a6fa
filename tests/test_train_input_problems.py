"""Input problems stop before any work, in the driver's "Invalid flags" list: a --data_dir
that does not exist or holds no data (never a silent fallback to another copy), a dataset
whose manual files are missing, boundaries that do not fit --train_steps; and results.json
records the directory actually read (``data_path``). The command line's exit status 2 on a
missing --data_dir: tests/test_cli.py (its one process of the driver's command lines)."""
import os

import tensorflow as tf

from tests.test_idx import write_fake_fashion
from tftransfer.data import fashion_mnist
from tftransfer.training import config as config_lib
from tftransfer.training import data_location
from tftransfer.training import preflight
from tftransfer.training.run import run

INVALID = "Invalid flags, nothing was run"
# A two-step from-scratch run on 28x28 Fashion-MNIST-format files written by the test.
FASHION = dict(dataset="fashion_mnist", arch="small_resnet", model_widths=[4, 8],
               source="none", scheme="l2", resize=28, crop_size=28, batch_size=4,
               train_steps=2, lr_boundaries=[], checkpoint_every=0, log_every=0,
               export=False, eval_batch_size=8, verbose=0)


def fashion_config(data_dir, output_dir, **overrides):
    return config_lib.make(**dict(FASHION, data_dir=data_dir, output_dir=output_dir,
                                  **overrides))


def problems_of(config):
    """The message of the driver's checks (validate, then preflight); '' when none."""
    try:
        preflight.check(config_lib.validate(config))
    except config_lib.ConfigError as error:
        return str(error)
    return ""


class DataDirTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.root = self.get_temp_dir()
        self.output_dir = os.path.join(self.root, "out")

    def assertRefusedBeforeWork(self, data_dir, *expected):
        config = fashion_config(data_dir, self.output_dir)
        with self.assertRaises(config_lib.ConfigError) as caught:
            run(config)
        message = str(caught.exception)
        self.assertStartsWith(message, INVALID)
        for text in expected:
            self.assertIn(text, message)
        self.assertFalse(os.path.exists(self.output_dir), "the refused run wrote its directory")
        return message

    def test_non_existent_data_dir_is_refused_before_work(self):
        missing = os.path.join(self.root, "no_such_dir")
        message = self.assertRefusedBeforeWork(missing, f"--data_dir={missing} does not exist",
                                               "train-images-idx3-ubyte")
        self.assertNotIn(fashion_mnist.DEBIAN_DIR, message)

    def test_empty_and_partial_data_dirs_are_refused(self):
        empty = os.path.join(self.root, "empty")
        os.makedirs(empty)
        self.assertRefusedBeforeWork(empty, f"--data_dir={empty} holds no Fashion-MNIST data")
        partial = os.path.join(self.root, "partial")
        write_fake_fashion(partial)
        os.remove(os.path.join(partial, "t10k-labels-idx1-ubyte.gz"))
        self.assertRefusedBeforeWork(partial, "lacks", "t10k-labels-idx1-ubyte")

    def test_a_file_as_data_dir_is_refused(self):
        path = os.path.join(self.root, "a_file")
        with open(path, "w") as f:
            f.write("not a directory")
        self.assertRefusedBeforeWork(path, f"--data_dir={path} is a file, not a directory")

    def test_the_given_data_dir_is_read_and_recorded(self):
        """The files written here (12 training images), not the 60000 of another copy, and
        their absolute directory as ``data_path``; ``flags.data_dir`` as given."""
        mine = os.path.join(self.root, "mine")
        write_fake_fashion(mine, n_train=12, n_test=6)
        given = os.path.relpath(mine)
        record = run(fashion_config(given, self.output_dir))
        self.assertEqual(record["data_path"], os.path.abspath(mine))
        self.assertEqual(record["flags"]["data_dir"], given)
        self.assertEqual(record["num_train"], 12)
        self.assertEqual(record["num_eval"], 6)

    def test_source_eval_data_dir_is_checked_too(self):
        mine = os.path.join(self.root, "target")
        write_fake_fashion(mine)
        missing = os.path.join(self.root, "no_source_here")
        message = problems_of(fashion_config(
            mine, None, source="imagenet", grey_to_rgb=True, scheme="none",
            source_eval_dataset="fashion_mnist",
            source_eval_data_dir=missing))
        self.assertIn(f"--source_eval_data_dir={missing} does not exist", message)

    def test_experiments_commands_refuse_in_the_same_format(self):
        missing = os.path.join(self.root, "nowhere")
        with self.assertRaisesRegex(config_lib.ConfigError,
                                    f"{INVALID}:\n  - --data_dir={missing} does not exist"):
            data_location.check_data_dir(missing)
        mine = os.path.join(self.root, "found")
        write_fake_fashion(mine)
        self.assertEqual(data_location.check_data_dir(mine), os.path.abspath(mine))

    def test_demo_refuses_before_work(self):
        """``python -m experiments.demo --data_dir=<missing>``, in-process: exit status 2,
        the driver's message, no output directory."""
        from absl import flags

        from experiments import demo

        missing = os.path.join(self.root, "nothing")
        argv = ["demo", f"--data_dir={missing}", f"--output_dir={self.output_dir}",
                "--threads=0"]
        flags.FLAGS.unparse_flags()
        flags.FLAGS(argv)
        try:
            with self.assertLogs("absl", "ERROR") as logs, \
                    self.assertRaises(SystemExit) as caught:
                demo.main(argv)
        finally:
            flags.FLAGS.unparse_flags()
        self.assertEqual(caught.exception.code, 2)
        self.assertIn(f"{INVALID}:\n  - --data_dir={missing} does not exist",
                      "\n".join(logs.output))
        self.assertFalse(os.path.exists(self.output_dir))


class ManualFilesTest(tf.test.TestCase):

    def test_default_dogs_command_without_data_dir(self):
        message = problems_of(config_lib.make(dataset="stanford_dogs120"))
        self.assertStartsWith(message, INVALID)
        for text in ("--dataset=stanford_dogs120 needs --data_dir", "train_list.mat",
                     "--manual_dir", "--imagenet_val_dir", "--dogs_test_set=official"):
            self.assertIn(text, message)

    def test_dogs_manual_files_absent(self):
        empty = self.get_temp_dir()
        message = problems_of(config_lib.make(dataset="stanford_dogs120", data_dir=empty,
                                              dogs_test_set="official"))
        manual = os.path.join(empty, "manual", "stanford_dogs120")
        self.assertIn(f"the manual directory {manual} lacks ['Images', 'train_list.mat', "
                      "'test_list.mat']", message)
        self.assertNotIn("--imagenet_val_dir", message)

    def test_manual_files_present_pass_with_a_data_dir_still_to_create(self):
        manual = os.path.join(self.get_temp_dir(), "dogs_files")
        os.makedirs(os.path.join(manual, "Images"))
        for name in ("train_list.mat", "test_list.mat"):
            open(os.path.join(manual, name), "w").close()
        config = config_lib.make(dataset="stanford_dogs120", dogs_test_set="official",
                                 data_dir=os.path.join(self.get_temp_dir(), "tfds_new"),
                                 manual_dir=manual)
        self.assertEqual(problems_of(config), "")

    def test_a_prepared_copy_needs_no_manual_files(self):
        data_dir = self.get_temp_dir()
        version = os.path.join(data_dir, "mit_indoor67", "square256", "1.0.0")
        os.makedirs(version)
        open(os.path.join(version, "dataset_info.json"), "w").close()
        self.assertEqual(problems_of(config_lib.make(dataset="mit_indoor67",
                                                     data_dir=data_dir)), "")
        self.assertIn("lacks", problems_of(config_lib.make(dataset="caltech256_30",
                                                           data_dir=data_dir)))

    def test_class_folders_manual_dir(self):
        data_dir = os.path.join(self.get_temp_dir(), "tfds")
        missing = os.path.join(self.get_temp_dir(), "my_images")
        message = problems_of(config_lib.make(dataset="class_folders", data_dir=data_dir,
                                              manual_dir=missing))
        self.assertIn(f"--manual_dir={missing} for --dataset=class_folders does not exist",
                      message)
        self.assertIn("reads its tree from --manual_dir",
                      problems_of(config_lib.make(dataset="class_folders", data_dir=data_dir)))


class BoundariesTest(tf.test.TestCase):

    def test_refusal_gives_the_flag_to_paste(self):
        message = problems_of(config_lib.make(train_steps=2))
        self.assertIn("--lr_boundaries=[6000] must be increasing", message)
        self.assertIn("pass --lr_boundaries=1 ", message)
        self.assertIn("--lr_boundaries= for a constant learning rate", message)
        # The pasted flag is accepted (by the flag checks; the data is another matter).
        config_lib.validate(config_lib.make(train_steps=2, lr_boundaries=[1]))

    def test_suggestion_puts_the_last_decay_at_the_recipes_share(self):
        share = 6000 / 9000  # the recipe: --lr_boundaries=6000 of --train_steps=9000
        for steps in (3, 30, 300, 1000):
            self.assertEqual(config_lib.suggested_boundaries([6000], steps),
                             [round(share * steps)])
        self.assertEqual(config_lib.suggested_boundaries([3000, 6000], 300), [100, 200])
        self.assertEqual(config_lib.suggested_boundaries([6000], 1), [])
        self.assertEqual(config_lib.suggested_boundaries([5, 3], 10), [3, 5])


if __name__ == "__main__":
    tf.test.main()
