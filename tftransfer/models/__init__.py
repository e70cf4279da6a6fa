"""Model builders: ResNets (keras.applications and torchvision layouts), EfficientNet-Lite0
and the small ResNet of the CPU-scale experiments, each with a new head, the kept source
head and its units (see :mod:`tftransfer.models.build`)."""
from tftransfer.models.build import ARCHS, SOURCES, TransferModel, build

__all__ = ["ARCHS", "SOURCES", "TransferModel", "build"]
