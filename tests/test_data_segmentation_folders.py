"""``segmentation_folders`` on tiny trees written here: registered with tfds, prepared
through the pipeline, the stored pixels and labels equal the files (an RGB PNG, an RGB
JPEG kept as its bytes, a grey image converted to RGB, greyscale and palette masks), class
names from ``classes.txt`` or from the masks, the manual directory untouched; and the
refusals: an unpaired file, a mask of another size, a label out of range, an RGB mask, a
missing ``train/``, an unknown split."""
import os
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from tftransfer.data import segmentation_pipeline as seg_data
from tftransfer.data.builders.segmentation_folders import SegmentationFolders
from tests.test_data_builders import listing


def write_pair(root, split, name, image, mask, image_format="PNG", mask_mode="L"):
    """Writes ``<split>/images/<name>.<png|jpg>`` and ``<split>/masks/<name>.png``."""
    for folder in ("images", "masks"):
        os.makedirs(os.path.join(root, split, folder), exist_ok=True)
    ext = "jpg" if image_format == "JPEG" else "png"
    img = Image.fromarray(image)
    img.save(os.path.join(root, split, "images", f"{name}.{ext}"), format=image_format,
             quality=95)
    mask_img = _palette(mask) if mask_mode == "P" else Image.fromarray(mask.astype(np.uint8))
    mask_img.save(os.path.join(root, split, "masks", f"{name}.png"), format="PNG")


def _palette(mask):
    """A palette PNG whose indices are ``mask`` (colours arbitrary, as VOC's)."""
    img = Image.new("P", (mask.shape[1], mask.shape[0]))
    img.putpalette(list(np.random.default_rng(0).integers(0, 256, 768)))
    img.putdata(mask.reshape(-1).tolist())
    return img


def random_pair(rng, height, width, num_classes, grey=False):
    shape = (height, width) if grey else (height, width, 3)
    image = rng.integers(0, 256, shape).astype(np.uint8)
    mask = rng.integers(0, num_classes, (height, width)).astype(np.uint8)
    mask[0, 0] = 255
    return image, mask


def decode_jpeg(path):
    return tf.io.decode_jpeg(tf.io.read_file(path), channels=3).numpy()


class SegmentationFoldersTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.root = os.path.join(tempfile.mkdtemp(), "my_scenes")
        self.data_dir = self.get_temp_dir()
        rng = np.random.default_rng(0)
        self.pairs = {}
        for split, names in (("train", ("a", "b", "c")), ("validation", ("d", "e")),
                             ("test", ("f",))):
            for i, name in enumerate(names):
                image, mask = random_pair(rng, 5 + i, 7, 3, grey=(name == "c"))
                fmt = "JPEG" if name == "b" else "PNG"
                write_pair(self.root, split, name, image, mask, fmt,
                           "P" if name in ("a", "d") else "L")
                self.pairs[name] = (image, mask, fmt)

    def _write_classes(self, names):
        with open(os.path.join(self.root, "classes.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(names) + "\n\n")

    def _check_split(self, examples, names):
        got = list(examples.dataset.as_numpy_iterator())
        self.assertLen(got, len(names))
        self.assertEqual(examples.num_examples, len(names))
        stored = examples.builder.as_dataset(examples.split, shuffle_files=False)
        files = [os.path.basename(f.decode()) for f in
                 stored.map(lambda e: e["image/filename"]).as_numpy_iterator()]
        self.assertCountEqual([os.path.splitext(f)[0] for f in files], names)
        for example, file_name in zip(got, files):
            name = os.path.splitext(file_name)[0]
            image, mask, fmt = self.pairs[name]
            self.assertEqual(example["image"].dtype, np.uint8)
            self.assertEqual(example["mask"].dtype, np.uint8)
            self.assertEqual(example["mask"].shape, mask.shape)
            self.assertAllEqual(example["mask"], mask)
            if fmt == "JPEG":  # Stored as its own bytes: TensorFlow's decoding of the file.
                path = os.path.join(self.root, "train", "images", f"{name}.jpg")
                self.assertAllEqual(example["image"], decode_jpeg(path))
            elif image.ndim == 2:  # Grey: replicated to RGB.
                self.assertAllEqual(example["image"], np.repeat(image[..., None], 3, -1))
            else:
                self.assertAllEqual(example["image"], image)

    def test_registered_with_tfds(self):
        self.assertIn("segmentation_folders", tfds.list_builders(with_community_datasets=False))
        self.assertIs(tfds.builder_cls("segmentation_folders"), SegmentationFolders)
        self.assertIn("train/masks/<name>.png", SegmentationFolders.MANUAL_DOWNLOAD_INSTRUCTIONS)
        self.assertEqual(seg_data.SEGMENTATION_DATASETS,
                         ("cityscapes", "sbd", "segmentation_folders"))

    def test_prepared_pixels_labels_and_class_names(self):
        self._write_classes(["background", "cat", "dog"])
        before = listing(self.root)
        with self.assertLogs("absl", "INFO") as logs:
            train = seg_data.load_examples("segmentation_folders", "train", self.data_dir,
                                           self.root)
        self.assertEqual(listing(self.root), before)
        logged = "\n".join(logs.output)
        self.assertIn(f"from {self.root} (local files, nothing is downloaded)", logged)
        self.assertIn("split train: 3 image/mask pair(s) stored", logged)
        self.assertEqual(train.num_classes, 3)
        self.assertEqual(train.class_names, ["background", "cat", "dog"])
        self._check_split(train, ["a", "b", "c"])
        self._check_split(seg_data.load_examples("segmentation_folders", "validation",
                                                 self.data_dir, self.root), ["d", "e"])
        self._check_split(seg_data.load_examples("segmentation_folders", "test",
                                                 self.data_dir, self.root), ["f"])
        self.assertEqual(train.builder.builder_config.name[:len("my_scenes_")], "my_scenes_")

    def test_prepared_examples_feed_the_batches(self):
        self._write_classes(["background", "cat", "dog"])
        train = seg_data.load_examples("segmentation_folders", "train", self.data_dir,
                                       self.root)
        x, y = next(iter(seg_data.train_batches(train.dataset, 2, (6, 8), scale=(0.5, 2.0),
                                                color_jitter=True, seed=1)))
        self.assertEqual((x.shape, y.shape), ((2, 6, 8, 3), (2, 6, 8)))
        self.assertContainsSubset(set(np.unique(y.numpy()).tolist()), {0, 1, 2, 255})
        test = seg_data.load_examples("segmentation_folders", "test", self.data_dir, self.root)
        (image, mask), = list(seg_data.eval_batches(test.dataset).as_numpy_iterator())
        self.assertAllEqual(image[0], self.pairs["f"][0].astype(np.float32))
        self.assertAllEqual(mask[0], self.pairs["f"][1].astype(np.int32))

    def test_channel_mean_of_the_training_images(self):
        train = seg_data.load_examples("segmentation_folders", "train", self.data_dir,
                                       self.root)
        pixels = [np.asarray(Image.open(os.path.join(self.root, "train", "images", f))
                             .convert("RGB"), np.float64).reshape(-1, 3)
                  for f in ("a.png", "c.png")]
        pixels.append(decode_jpeg(os.path.join(self.root, "train", "images", "b.jpg"))
                      .reshape(-1, 3).astype(np.float64))
        want = np.concatenate(pixels).mean(axis=0)
        self.assertAllClose(seg_data.channel_mean(train), want)
        self.assertAllClose(seg_data.channel_mean(train), want)  # read back from the file
        validation = seg_data.load_examples("segmentation_folders", "validation",
                                            self.data_dir, self.root)
        self.assertNotAllClose(seg_data.channel_mean(validation), want)

    def test_classes_from_the_masks_without_classes_txt(self):
        image, mask = random_pair(np.random.default_rng(1), 4, 4, 1)
        mask[1, 1] = 6  # Largest label anywhere: 6, so 7 classes.
        write_pair(self.root, "test", "g", image, mask)
        examples = seg_data.load_examples("segmentation_folders", "train", self.data_dir,
                                          self.root)
        self.assertEqual(examples.num_classes, 7)
        self.assertEqual(examples.class_names, [f"class_{i}" for i in range(7)])
        reloaded = seg_data.load_examples("segmentation_folders", "test", self.data_dir,
                                          self.root)  # a new builder, read from disk
        self.assertEqual((reloaded.num_classes, reloaded.num_examples), (7, 2))

    def test_a_changed_tree_is_prepared_anew(self):
        first = seg_data.get_builder("segmentation_folders", self.data_dir, self.root)
        image, mask = random_pair(np.random.default_rng(2), 4, 4, 3)
        write_pair(self.root, "train", "z", image, mask)
        second = seg_data.get_builder("segmentation_folders", self.data_dir, self.root)
        self.assertNotEqual(first.builder_config.name, second.builder_config.name)

    def test_unpaired_files_are_refused_by_name(self):
        os.remove(os.path.join(self.root, "train", "masks", "b.png"))
        image, mask = random_pair(np.random.default_rng(3), 4, 4, 3)
        write_pair(self.root, "validation", "x", image, mask)
        os.remove(os.path.join(self.root, "validation", "images", "x.png"))
        with self.assertRaises(ValueError) as caught:
            seg_data.get_builder("segmentation_folders", self.data_dir, self.root)
        message = str(caught.exception)
        self.assertIn(os.path.join(self.root, "train", "images", "b.jpg") + ": no mask", message)
        self.assertIn(os.path.join(self.root, "validation", "masks", "x.png") + ": no image",
                      message)
        self.assertIn("same name", message)

    def test_two_images_of_one_name_are_refused(self):
        image, _ = random_pair(np.random.default_rng(6), 5, 7, 3)
        Image.fromarray(image).save(os.path.join(self.root, "train", "images", "a.jpg"))
        with self.assertRaisesRegex(ValueError, r"train/images: 2 files named 'a' "
                                                r"\(a.jpg, a.png\)"):
            seg_data.get_builder("segmentation_folders", self.data_dir, self.root)

    def test_mask_of_another_size_is_refused(self):
        image, _ = random_pair(np.random.default_rng(4), 4, 6, 3)
        write_pair(self.root, "train", "w", image, np.zeros((4, 5), np.uint8))
        with self.assertRaisesRegex(ValueError, r"Mask train/masks/w.png is 4x5 .* its image "
                                                r"train/images/w.png is 4x6"):
            seg_data.load_examples("segmentation_folders", "train", self.data_dir, self.root)
        self.assertFalse(seg_data.get_builder("segmentation_folders", self.data_dir,
                                              self.root).is_prepared())

    def test_label_out_of_range_is_refused(self):
        self._write_classes(["background", "cat"])  # The masks use labels 0..2.
        with self.assertRaisesRegex(ValueError, r"Mask .*masks/.\.png has label\(s\) \[2\] "
                                                r"outside the 2 classes 0..1"):
            seg_data.load_examples("segmentation_folders", "train", self.data_dir, self.root)

    def test_rgb_mask_is_refused(self):
        image, mask = random_pair(np.random.default_rng(5), 4, 4, 3)
        write_pair(self.root, "train", "v", image, mask)
        Image.fromarray(image).save(os.path.join(self.root, "train", "masks", "v.png"))
        with self.assertRaisesRegex(ValueError, r"Mask .*v.png has image mode 'RGB'.*"
                                                r"single-channel"):
            seg_data.load_examples("segmentation_folders", "train", self.data_dir, self.root)

    def test_missing_train_names_the_layout(self):
        empty = tempfile.mkdtemp()
        with self.assertRaises(FileNotFoundError) as caught:
            seg_data.load_examples("segmentation_folders", "train", self.data_dir, empty)
        self.assertIn(empty, str(caught.exception))
        self.assertIn("train/masks/<name>.png", str(caught.exception))

    def test_unknown_split_names_the_splits(self):
        os.rename(os.path.join(self.root, "test"), os.path.join(self.root, "other"))
        with self.assertRaisesRegex(ValueError, r"no split 'test'; its splits are "
                                                r"\['train', 'validation'\]"):
            seg_data.load_examples("segmentation_folders", "test", self.data_dir, self.root)


if __name__ == "__main__":
    tf.test.main()
