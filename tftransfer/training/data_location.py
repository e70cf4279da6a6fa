"""Where a run's data lives and whether it is there, known before any work:
:func:`problems` and :func:`data_path`.

The one place that answers "which directory does this run read, and does it hold the
data?", for the driver's preflight (:func:`tftransfer.training.preflight.check`: every
problem is an entry of its "Invalid flags, nothing was run" list, raised before the model
is built or ``--output_dir`` is created) and for the experiments' commands
(``experiments.demo``, ``experiments.cpu_study``, ``experiments.scene_study``:
:func:`check_data_dir` before their first run). It reads directory listings only: no
image, no TensorFlow runtime, nothing written.

Rules, by ``--dataset``:

- ``fashion_mnist``, and ``scenes`` of Fashion-MNIST items: a given ``--data_dir`` is the
  only place looked (:func:`tftransfer.data.fashion_mnist.find`): a path that does not
  exist, is a file, or lacks one of the four IDX files
  (:data:`tftransfer.data.fashion_mnist.FILES`, plain or ``.gz``) is refused, never
  replaced by another copy. Without ``--data_dir``: the Keras cache, Debian's package,
  then the download (refused when all three fail).
- ``synthetic`` and ``--scenes_source=synthetic``: no files.
- the tfds-prepared datasets (:data:`MANUAL`): ``--data_dir`` is needed (the tfds data
  directory where the dataset is, or will be, stored). The data is there when
  ``--data_dir`` holds a prepared copy (``<data_dir>/<tfds name>/<config>/<version>/
  dataset_info.json``; food101, imagenet2012 and places365_small also tfds' own prepared
  source there) or when the manual directory holds the files its builder reads
  (:data:`MANUAL`; ``--manual_dir``, default ``<data_dir>/manual/<dataset>``, but
  ``class_folders`` and ``segmentation_folders`` read ``--manual_dir`` only). A
  ``--manual_dir`` that is not a directory is refused. ``stanford_dogs120`` still to be
  prepared with the paper's test set (``--dogs_test_set=imagenet_val``) also needs
  ``--imagenet_val_dir``, an existing directory.

A prepared copy is recognised by its files, whatever its config: one prepared at another
``--resize`` counts as present, and its builder names the missing files when it prepares
the new size.
"""
import glob
import os

from tftransfer.training import config as config_lib

# tfds-prepared dataset -> (tfds builder name, builder module, what its manual directory
# must hold: None for the builder's own MANUAL_PATHS, () for nothing: a prepared copy).
# The builder modules are imported when asked (they import tensorflow_datasets).
MANUAL = {
    "caltech256_30": ("caltech256", "caltech256", None),
    "caltech256_60": ("caltech256", "caltech256", None),
    "mit_indoor67": ("mit_indoor67", "mit_indoor67", None),
    "stanford_dogs120": ("stanford_dogs120", "stanford_dogs120", None),
    "class_folders": ("class_folders", "class_folders", None),
    "food101": ("tfds_source", "tfds_source", ()),
    "places365_small": ("tfds_source", "tfds_source", ()),
    "imagenet2012": ("tfds_source", "tfds_source", None),
    "cityscapes": ("cityscapes_train_ids", "cityscapes", None),
    "sbd": ("sbd_voc_aug", "sbd", None),
    "segmentation_folders": ("segmentation_folders", "segmentation_folders", None),
}
# Datasets whose builder reads --manual_dir itself (no default under --data_dir).
OWN_TREE = ("class_folders", "segmentation_folders")
TFDS_SOURCES = ("food101", "imagenet2012", "places365_small")


def _builder_module(dataset):
    import importlib

    return importlib.import_module(f"tftransfer.data.builders.{MANUAL[dataset][1]}")


def manual_paths(dataset):
    """What the manual directory of ``dataset`` must hold: a tuple of entries, each a tuple
    of alternative relative paths of which one must exist (empty: nothing manual, the data
    must be prepared already), from the dataset's builder."""
    if MANUAL[dataset][2] is not None:
        return ()
    module = _builder_module(dataset)
    if dataset == "imagenet2012":
        return tuple((tar,) for tar in module.IMAGENET_TARS)
    if dataset == "cityscapes":
        return ((module.IMAGES_ZIP, module.IMAGES_DIR), (module.LABELS_ZIP, module.LABELS_DIR))
    if dataset == "sbd":
        return ((module.SBD_ARCHIVE, module.SBD_DIR), (module.VOC_ARCHIVE, module.VOC_DIR))
    return tuple((path,) for path in module.MANUAL_PATHS)


def instructions(dataset):
    """The builder's instructions for its manual files, on one line (Stanford Dogs: the
    ImageNet part left to its own entry, :func:`_dogs_problems`)."""
    text = " ".join(_builder_module(dataset).INSTRUCTIONS.split())
    return text.split(" For the paper's test set")[0] if dataset == "stanford_dogs120" else text


def _expand(path):
    return os.path.abspath(os.path.expanduser(path))


def _uses_files(config):
    """Whether ``config`` reads files at all (not ``synthetic`` items)."""
    d = config.data
    return d.dataset != "synthetic" and not (d.dataset == "scenes"
                                             and d.scenes.source == "synthetic")


def _is_fashion(config):
    return config.data.dataset in ("fashion_mnist", "scenes")


def prepared(dataset, data_dir):
    """Whether ``data_dir`` holds a prepared tfds copy of ``dataset`` (any config; for the
    tfds sources also tfds' own prepared source)."""
    names = [MANUAL[dataset][0]] + ([dataset] if dataset in TFDS_SOURCES else [])
    root = _expand(data_dir)
    return any(glob.glob(os.path.join(root, name, *stars, "dataset_info.json"))
               for name in names for stars in (("*",), ("*", "*")))


def manual_dir(config):
    """The manual directory the builder of ``config``'s dataset reads (``--manual_dir``,
    default ``<data_dir>/manual/<dataset>``; ``class_folders``/``segmentation_folders``:
    ``--manual_dir`` only), or None."""
    d = config.data
    if d.manual_dir:
        return d.manual_dir
    if d.dataset in OWN_TREE or not d.data_dir:
        return None
    return os.path.join(d.data_dir, "manual", d.dataset)


def _missing_manual(dataset, directory):
    """The entries of :func:`manual_paths` absent from ``directory``, as text."""
    root = _expand(directory)
    return [" or ".join(entry) for entry in manual_paths(dataset)
            if not any(os.path.exists(os.path.join(root, path)) for path in entry)]


def _fashion_problems(config, flag):
    from tftransfer.data import fashion_mnist

    data_dir = config.data.data_dir
    if data_dir:
        problem = fashion_mnist.data_dir_problem(data_dir)
        return [f"--{flag}={problem}"] if problem else []
    try:
        fashion_mnist.find(None)
    except FileNotFoundError as error:
        return [f"--dataset={config.data.dataset} reads Fashion-MNIST, given no --{flag}: "
                + "; ".join(line.strip(" -") for line in str(error).splitlines())]
    return []


def _dogs_problems(config, flag):
    """``stanford_dogs120`` still to be prepared with the paper's test set: the ImageNet
    validation images it is made of."""
    d = config.data
    if d.dataset != "stanford_dogs120" or d.stanford_dogs120.test_set != "imagenet_val":
        return []
    val = d.stanford_dogs120.imagenet_val_dir
    if not val:
        return [f"--dataset=stanford_dogs120 --dogs_test_set=imagenet_val (the paper's test "
                f"set) is not prepared in --{flag} yet and needs --imagenet_val_dir=<folder "
                "of the ILSVRC-2012 validation JPEGs, ILSVRC2012_img_val.tar extracted>; or "
                "use --dogs_test_set=official."]
    if not os.path.isdir(_expand(val)):
        return [f"--imagenet_val_dir={val} does not exist (no directory there); give the "
                "folder of the ILSVRC-2012 validation JPEGs."]
    return []


def _tfds_problems(config, flag):
    d = config.data
    here = f"--dataset={d.dataset}"
    paths = manual_paths(d.dataset)
    files = " and ".join(" or ".join(entry) for entry in paths)
    where = ("in --manual_dir" if d.dataset in OWN_TREE else
             f"in --manual_dir (default <{flag}>/manual/{d.dataset})")
    needs = (f"{files} {where}" if paths else
             f"a prepared tfds copy in --{flag} (nothing is downloaded)")
    how = instructions(d.dataset)
    if d.manual_dir and not os.path.isdir(_expand(d.manual_dir)):
        return [f"--manual_dir={d.manual_dir} for {here} does not exist (no directory there);"
                f" it must hold {files or 'the files of the dataset'}: {how}"]
    if d.dataset in OWN_TREE and not d.manual_dir:
        return [f"{here} reads its tree from --manual_dir, which is not set: pass "
                f"--manual_dir=<the directory holding {files}>: {how}"]
    if not d.data_dir:
        return [f"{here} needs --{flag}, the tfds data directory where it is (or will be) "
                f"prepared, and until it is prepared there {needs}: {how}"
                ] + _dogs_problems(config, flag)
    if prepared(d.dataset, d.data_dir):
        return []
    state = ("does not exist" if not os.path.exists(_expand(d.data_dir))
             else "holds no prepared copy of it")
    if not paths:
        return [f"--{flag}={d.data_dir} {state}, and {here} needs {needs}: {how}"]
    directory = manual_dir(config)
    missing = _missing_manual(d.dataset, directory)
    out = []
    if missing:
        out.append(f"{here}: --{flag}={d.data_dir} {state}, and the manual directory "
                   f"{directory} lacks {missing}; put the dataset's files there (or pass "
                   f"--manual_dir=<the directory holding them>): {how}")
    return out + _dogs_problems(config, flag)


def problems(config, flag="data_dir"):
    """Problems of where ``config`` reads its data (module docstring), one line each with
    its fix; ``flag``: the flag that gave ``config.data.data_dir`` (``source_eval_data_dir``
    for the source task's). Empty when the data is there."""
    if not _uses_files(config):
        return []
    if _is_fashion(config):
        return _fashion_problems(config, flag)
    if config.data.dataset in MANUAL:
        return _tfds_problems(config, flag)
    return []


def data_path(config):
    """The absolute directory ``config``'s data is read from, for provenance: the
    Fashion-MNIST directory found (:func:`tftransfer.data.fashion_mnist.find`, no
    download), the ``--data_dir`` of a tfds dataset; None for generated data."""
    if not _uses_files(config):
        return None
    if _is_fashion(config):
        from tftransfer.data import fashion_mnist

        try:
            return fashion_mnist.find(config.data.data_dir, download=False)
        except FileNotFoundError:
            return None
    return _expand(config.data.data_dir) if config.data.data_dir else None


def check_data_dir(data_dir, dataset="fashion_mnist"):
    """For the experiments' commands: raises :class:`~tftransfer.training.config.ConfigError`
    in the driver's "Invalid flags" format when ``dataset``'s data is not where
    ``data_dir`` says (:func:`problems`); returns the absolute directory read."""
    config = config_lib.make(dataset=dataset, data_dir=data_dir)
    found = problems(config)
    if found:
        raise config_lib.ConfigError("Invalid flags, nothing was run:\n  - " +
                                     "\n  - ".join(found))
    return data_path(config)
