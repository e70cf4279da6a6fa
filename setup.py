"""Installs tftransfer: explicit inductive bias (L2-SP and variants) for fine-tuning in Keras 3.

The extras (what each pulls, and the torch CPU-build note of ``test``) are declared in
``tftransfer/extras.py``, read here by path so that building needs no dependency."""
import os
import runpy

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
EXTRAS = runpy.run_path(os.path.join(HERE, "tftransfer", "extras.py"))["EXTRAS"]

with open(os.path.join(HERE, "README.md"), encoding="utf-8") as readme:
    LONG_DESCRIPTION = readme.read()

setup(
    name="tftransfer",
    version="0.1.0",
    description=(
        "Fine-tuning pretrained convolutional networks with an explicit inductive bias "
        "toward the starting point (L2-SP and variants), in TensorFlow / Keras 3."
    ),
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    python_requires=">=3.10",
    # The library, the commands (tftransfer_cli: `tftransfer train|select|...`), and the data
    # files of tftransfer.data (class lists, label tables) as the package of their folder.
    packages=find_packages(include=["tftransfer", "tftransfer.*", "tftransfer_cli"])
    + ["tftransfer.data.resources"],
    package_data={"tftransfer": ["py.typed"], "tftransfer.data.resources": ["*.txt", "*.tsv"]},
    entry_points={"console_scripts": ["tftransfer=tftransfer_cli.main:main"]},
    # The core (regularizers, penalty, fisher, models, weights) needs these alone.
    install_requires=["tensorflow>=2.16", "keras>=3", "numpy"],
    extras_require=EXTRAS,
)
