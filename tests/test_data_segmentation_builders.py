"""Dummy-data tests of the Cityscapes and SBD builders, written like tfds' own
(``DatasetBuilderTestCase``, which needs ``dill``, not a dependency): tiny fake files in
the official layouts (extracted folders, and the official archives), prepared through
``download_and_prepare(download_config=...)``: registered with tfds, the split sizes, the
stored pixels and labels against the files and a label table written here from the
official definition (Cityscapes) or the documented rule (SBD: train_aug names, VOC's
annotation where it exists), the manual directory left as it was; and a missing manual
download names the files and where to put them."""
import io
import os
import tarfile
import tempfile
import zipfile

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image
from scipy.io import savemat

from tftransfer.data import segmentation_pipeline as seg_data
from tftransfer.data.builders.cityscapes import CityscapesTrainIds
from tftransfer.data.builders.sbd import SbdVocAug
from tests.test_data_builders import listing

# Cityscapes' 19 training classes and their label ids (the official label definition).
CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole",
                      "traffic light", "traffic sign", "vegetation", "terrain", "sky",
                      "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle"]
CITYSCAPES_IDS = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def expected_train_ids(label_ids):
    table = np.full(256, 255, np.int64)
    table[CITYSCAPES_IDS] = np.arange(19)
    return table[label_ids]


def png(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8), mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def palette_png(indices):
    img = Image.new("P", (indices.shape[1], indices.shape[0]))
    img.putpalette(list(np.random.default_rng(0).integers(0, 256, 768)))
    img.putdata(indices.reshape(-1).tolist())
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_files(root, files):
    for rel, data in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def zip_files(path, files):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("README", b"dummy")
        for rel in sorted(files):
            z.writestr(rel, files[rel])


def tar_files(path, files, mode):
    with tarfile.open(path, mode) as t:
        for rel in sorted(files):
            info = tarfile.TarInfo(rel)
            info.size = len(files[rel])
            t.addfile(info, io.BytesIO(files[rel]))


def stored(builder, split):
    """``{image/filename: (image, mask [H, W])}`` of a prepared split."""
    return {e["image/filename"].decode(): (e["image"], e["mask"][..., 0])
            for e in builder.as_dataset(split).as_numpy_iterator()}


def prepare(builder, manual):
    before = listing(manual)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual))
    return listing(manual) == before


class CityscapesDummyTest(tf.test.TestCase):
    """Fake ``leftImg8bit`` / ``gtFine`` trees: 3 train images in 2 cities, 2 val."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        rng = np.random.default_rng(0)
        cls.images, cls.files = {}, {}
        cls.label_ids = {}
        for split, city, count in (("train", "aachen", 2), ("train", "bochum", 1),
                                   ("val", "frankfurt", 2)):
            for i in range(count):
                stem = f"{city}_{i:06d}_{19 + i:06d}"
                image = rng.integers(0, 256, (4, 6, 3)).astype(np.uint8)
                ids = rng.integers(0, 40, (4, 6)).astype(np.uint8)  # 34..39: not label ids
                ids[0, 0] = 255
                rel = f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png"
                cls.images[rel], cls.label_ids[rel] = image, ids
                cls.files[rel] = png(image)
                gt = f"gtFine/{split}/{city}/{stem}_gtFine_"
                cls.files[gt + "labelIds.png"] = png(ids)
                cls.files[gt + "color.png"] = png(image)  # the official extras, unused
                cls.files[gt + "polygons.json"] = b"{}"

    def _builder(self):
        return tfds.builder("cityscapes_train_ids", data_dir=self.get_temp_dir())

    def _check(self, builder):
        self.assertEqual({s: i.num_examples for s, i in builder.info.splits.items()},
                         {"train": 3, "validation": 2})
        self.assertEqual(builder.info.metadata["class_names"], CITYSCAPES_CLASSES)
        self.assertEqual(builder.info.metadata["num_classes"], 19)
        for split, folder in (("train", "train"), ("validation", "val")):
            got = stored(builder, split)
            want = [rel for rel in self.images if rel.split("/")[1] == folder]
            self.assertCountEqual(got, want)
            for rel, (image, mask) in got.items():
                self.assertAllEqual(image, self.images[rel])
                self.assertAllEqual(mask, expected_train_ids(self.label_ids[rel]))

    def test_registered(self):
        self.assertIs(tfds.builder_cls("cityscapes_train_ids"), CityscapesTrainIds)
        self.assertIn("gtFine_trainvaltest.zip", CityscapesTrainIds.MANUAL_DOWNLOAD_INSTRUCTIONS)
        # tfds' own builder stays registered under its own name.
        self.assertIn("cityscapes", tfds.list_builders(with_community_datasets=False))

    def test_extracted_folders(self):
        manual = tempfile.mkdtemp()
        write_files(manual, self.files)
        builder = self._builder()
        self.assertTrue(prepare(builder, manual))
        self._check(builder)

    def test_official_archives_read_in_place(self):
        manual = tempfile.mkdtemp()
        zip_files(os.path.join(manual, "leftImg8bit_trainvaltest.zip"),
                  {k: v for k, v in self.files.items() if k.startswith("leftImg8bit/")})
        zip_files(os.path.join(manual, "gtFine_trainvaltest.zip"),
                  {k: v for k, v in self.files.items() if k.startswith("gtFine/")})
        builder = self._builder()
        self.assertTrue(prepare(builder, manual))
        extracted = os.path.join(self.get_temp_dir(), "downloads", "extracted")
        self.assertEmpty(os.listdir(extracted) if os.path.isdir(extracted) else [])  # in place
        self._check(builder)
        examples = seg_data.load_examples("cityscapes", "validation", self.get_temp_dir(),
                                          manual)
        self.assertEqual((examples.num_examples, examples.num_classes), (2, 19))
        self.assertEqual(examples.dataset.element_spec["mask"].shape.as_list(), [None, None])

    def test_image_without_label_is_refused_by_name(self):
        manual = tempfile.mkdtemp()
        files = dict(self.files)
        del files["gtFine/train/bochum/bochum_000000_000019_gtFine_labelIds.png"]
        write_files(manual, files)
        with self.assertRaisesRegex(ValueError, "bochum_000000_000019_leftImg8bit.png: no "
                                                "gtFine/train/bochum/bochum_000000_000019_"
                                                "gtFine_labelIds.png"):
            prepare(self._builder(), manual)

    def test_missing_manual_download_names_the_files_and_where(self):
        data_dir = self.get_temp_dir()
        with self.assertRaises(FileNotFoundError) as caught:
            seg_data.load_examples("cityscapes", "train", data_dir)
        message = str(caught.exception)
        self.assertIn(os.path.join(data_dir, "manual", "cityscapes"), message)
        self.assertIn("leftImg8bit_trainvaltest.zip", message)
        self.assertIn("gtFine_trainvaltest.zip", message)
        partial = tempfile.mkdtemp()
        zip_files(os.path.join(partial, "leftImg8bit_trainvaltest.zip"), {})
        with self.assertRaisesRegex(FileNotFoundError, r"gtFine_trainvaltest.zip or gtFine/"
                                                       r"\)? not found. Expected directory: "
                                                       + partial):
            seg_data.load_examples("cityscapes", "train", data_dir, partial)


class SbdDummyTest(tf.test.TestCase):
    """SBD train a1 a2 a3 v1, SBD val a4 v2; VOC train a1 t1, VOC val v1 v2 v3: train_aug
    = a1 a2 a3 a4 t1 (a1 and t1 with VOC's annotation), validation = v1 v2 v3."""

    SBD = {"train": ["a1", "a2", "a3", "v1"], "val": ["a4", "v2"]}
    VOC = {"train": ["a1", "t1"], "val": ["v1", "v2", "v3"]}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        rng = np.random.default_rng(1)
        cls.sbd_files, cls.voc_files, cls.want = {}, {}, {}
        sbd, voc = "benchmark_RELEASE/dataset", "VOCdevkit/VOC2012"
        for name in sorted(set(cls.SBD["train"] + cls.SBD["val"])):
            image = rng.integers(0, 256, (5, 7, 3)).astype(np.uint8)
            labels = rng.integers(0, 21, (5, 7)).astype(np.uint8)
            cls.sbd_files[f"{sbd}/img/{name}.jpg"] = jpeg(image)
            buffer = io.BytesIO()
            savemat(buffer, {"GTcls": {"Segmentation": labels,
                                       "Boundaries": np.zeros((1, 1)),
                                       "CategoriesPresent": np.unique(labels)}})
            cls.sbd_files[f"{sbd}/cls/{name}.mat"] = buffer.getvalue()
            cls.want[f"{sbd}/img/{name}.jpg"] = labels
        for name in sorted(set(cls.VOC["train"] + cls.VOC["val"])):
            image = rng.integers(0, 256, (6, 4, 3)).astype(np.uint8)  # not SBD's copy
            labels = rng.integers(0, 21, (6, 4)).astype(np.uint8)
            labels[0] = 255  # VOC's boundary
            cls.voc_files[f"{voc}/JPEGImages/{name}.jpg"] = jpeg(image)
            cls.voc_files[f"{voc}/SegmentationClass/{name}.png"] = palette_png(labels)
            cls.want[f"{voc}/JPEGImages/{name}.jpg"] = labels
        cls.voc_files[f"{voc}/JPEGImages/unused.jpg"] = jpeg(image)
        for split in ("train", "val"):
            cls.sbd_files[f"{sbd}/{split}.txt"] = "\n".join(cls.SBD[split]).encode() + b"\n"
            cls.voc_files[f"{voc}/ImageSets/Segmentation/{split}.txt"] = (
                "\n".join(cls.VOC[split]).encode() + b"\n")

    def _builder(self):
        return tfds.builder("sbd_voc_aug", data_dir=self.get_temp_dir())

    def _check(self, builder):
        self.assertEqual({s: i.num_examples for s, i in builder.info.splits.items()},
                         {"train": 5, "validation": 3})
        self.assertEqual(builder.info.metadata["class_names"], VOC_CLASSES)
        sbd, voc = "benchmark_RELEASE/dataset/img", "VOCdevkit/VOC2012/JPEGImages"
        want_names = {"train": [f"{voc}/a1.jpg", f"{sbd}/a2.jpg", f"{sbd}/a3.jpg",
                                f"{sbd}/a4.jpg", f"{voc}/t1.jpg"],
                      "validation": [f"{voc}/v1.jpg", f"{voc}/v2.jpg", f"{voc}/v3.jpg"]}
        files = {**self.sbd_files, **self.voc_files}
        for split, names in want_names.items():
            got = stored(builder, split)
            self.assertCountEqual(got, names)
            for name, (image, mask) in got.items():
                self.assertAllEqual(image, tf.io.decode_jpeg(files[name], channels=3))
                self.assertAllEqual(mask, self.want[name])

    def test_registered(self):
        self.assertIs(tfds.builder_cls("sbd_voc_aug"), SbdVocAug)
        self.assertIn("benchmark.tgz", SbdVocAug.MANUAL_DOWNLOAD_INSTRUCTIONS)

    def test_extracted_folders(self):
        manual = tempfile.mkdtemp()
        write_files(manual, {**self.sbd_files, **self.voc_files})
        builder = self._builder()
        self.assertTrue(prepare(builder, manual))
        self._check(builder)

    def test_official_archives(self):
        manual = tempfile.mkdtemp()
        tar_files(os.path.join(manual, "benchmark.tgz"), self.sbd_files, "w:gz")
        tar_files(os.path.join(manual, "VOCtrainval_11-May-2012.tar"), self.voc_files, "w")
        builder = self._builder()
        self.assertTrue(prepare(builder, manual))
        extracted = os.path.join(self.get_temp_dir(), "downloads", "extracted")
        self.assertLen(os.listdir(extracted), 2)  # tfds' extraction, not the manual dir
        self._check(builder)
        examples = seg_data.load_examples("sbd", "train", self.get_temp_dir(), manual)
        self.assertEqual((examples.num_examples, examples.num_classes), (5, 21))

    def test_label_out_of_range_is_refused(self):
        manual = tempfile.mkdtemp()
        files = dict(self.voc_files)
        files["VOCdevkit/VOC2012/SegmentationClass/v2.png"] = palette_png(
            np.full((6, 4), 21, np.uint8))
        write_files(manual, {**self.sbd_files, **files})
        with self.assertRaisesRegex(ValueError, r"SegmentationClass/v2.png has label\(s\) "
                                                r"\[21\] outside the 21 classes 0..20"):
            prepare(self._builder(), manual)

    def test_missing_manual_download_names_the_files_and_where(self):
        manual = tempfile.mkdtemp()
        write_files(manual, self.voc_files)  # VOC there, SBD missing
        with self.assertRaises(FileNotFoundError) as caught:
            seg_data.load_examples("sbd", "train", self.get_temp_dir(), manual)
        message = str(caught.exception)
        self.assertIn("benchmark.tgz or benchmark_RELEASE/", message)
        self.assertIn(f"Expected directory: {manual}", message)
        self.assertIn("VOCtrainval_11-May-2012.tar", message)


if __name__ == "__main__":
    tf.test.main()
