"""Fashion-MNIST from local IDX files, with a clear account of where it looked.

Where it is looked for: a given ``data_dir`` is the only place (a directory that does not
exist or lacks one of the four files of :data:`FILES` raises ``FileNotFoundError`` saying
which, never a silent fallback to another copy). Without ``data_dir``: the Keras cache
(``$KERAS_HOME/datasets/fashion-mnist``, default ``~/.keras``), Debian's
``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``), then Keras' real
download when the machine is online (``download=True``), which fills the Keras cache. A
damaged file found there raises ``idx.IdxFormatError`` naming it and how to replace it.
"""
import os

import numpy as np

from tftransfer.data import idx

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
# The four IDX files (each plain or gzip-compressed, ``.gz``).
FILES = tuple(f"{idx.SPLIT_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
              for split in ("train", "test") for kind in ("images", "labels"))
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
HOW_TO_GET = ("Get the data with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
              "or put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
              "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in a directory and "
              "pass it as data_dir (--data_dir).")
HOW_TO_REPAIR = ("Delete the damaged file and download it again (keras.datasets.fashion_mnist."
                 "load_data() refills the Keras cache), or, when it comes from the Debian "
                 "package, reinstall it: `sudo apt-get install --reinstall "
                 "dataset-fashion-mnist`.")


def keras_cache_dir():
    """Where ``keras.datasets.fashion_mnist`` keeps its files."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "datasets", "fashion-mnist")


def _download():
    import keras  # imported here: only the download path needs it

    keras.datasets.fashion_mnist.load_data()
    return keras_cache_dir()


def missing_files(directory):
    """The names of :data:`FILES` that ``directory`` lacks (neither plain nor ``.gz``): all
    of them when it is not a directory, none when it holds the dataset."""
    if not os.path.isdir(directory):
        return list(FILES)
    return [name for name in FILES
            if not any(os.path.isfile(os.path.join(directory, name + suffix))
                       for suffix in ("", ".gz"))]


def data_dir_problem(data_dir):
    """Why the given ``data_dir`` cannot be read as Fashion-MNIST (one line, with the fix),
    or None when it holds the four IDX files."""
    directory = os.path.abspath(os.path.expanduser(data_dir))
    if not os.path.isdir(directory):
        what = "is a file, not a directory" if os.path.exists(directory) else "does not exist"
        return (f"{data_dir} {what}: give the directory holding the Fashion-MNIST IDX files "
                f"{list(FILES)} (each plain or .gz), or no data_dir at all to use the Keras "
                "cache, the Debian package or the download.")
    missing = missing_files(directory)
    if len(missing) == len(FILES):
        return (f"{data_dir} holds no Fashion-MNIST data (none of the IDX files {list(FILES)}"
                ", plain or .gz): put them there, or give the directory that holds them.")
    if missing:
        return (f"{data_dir} lacks the Fashion-MNIST IDX file(s) {missing} (plain or .gz); "
                "put them there beside the others.")
    return None


def find(data_dir=None, download=True):
    """Absolute directory holding the four Fashion-MNIST IDX files (module docstring: a
    given ``data_dir`` is the only place looked); raises FileNotFoundError saying where it
    looked and how to get the data."""
    if data_dir:
        problem = data_dir_problem(data_dir)
        if problem:
            raise FileNotFoundError(f"Fashion-MNIST not found: data_dir {problem}")
        return os.path.abspath(os.path.expanduser(data_dir))
    tried = []
    candidates = [("Keras cache", keras_cache_dir()), ("Debian package", DEBIAN_DIR)]
    for label, directory in candidates:
        if not missing_files(directory):
            return directory
        tried.append(f"{label}: {directory} (no IDX files)")
    if download:
        try:
            return _download()
        except Exception as error:  # offline, proxy, disk: report it with the rest
            tried.append(f"download with keras.datasets.fashion_mnist: {error}")
    else:
        tried.append("download: disabled")
    raise FileNotFoundError("Fashion-MNIST not found. Looked in:\n  - " + "\n  - ".join(tried)
                            + "\n" + HOW_TO_GET)


def load(data_dir=None, download=True):
    """``{"train": (x, y), "test": (x, y)}``, images uint8 [N, 28, 28], labels int64."""
    directory = find(data_dir, download)
    try:
        return {split: idx.load_split(directory, split) for split in ("train", "test")}
    except idx.IdxFormatError as err:
        raise idx.IdxFormatError(f"{err}\n{HOW_TO_REPAIR}") from err


def select_classes(images, labels, classes, relabel=True):
    """The examples of ``classes``; labels renumbered 0..len(classes)-1 in that order."""
    classes = list(classes)
    keep = np.isin(labels, classes)
    images, labels = images[keep], labels[keep]
    if relabel:
        lookup = np.full(int(max(classes)) + 1, -1, np.int64)
        lookup[classes] = np.arange(len(classes))
        labels = lookup[labels]
    return images, labels
