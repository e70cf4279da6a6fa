"""Prepares a dataset once (decoded, resized, stored as uint8) and stores its training mean.

    tftransfer prepare --dataset caltech256_30 --data_dir ~/tfds \\
        --manual_dir ~/downloads/caltech256 [--keep_aspect] [--resize 256]
    tftransfer prepare --dataset stanford_dogs120 --data_dir ~/tfds \\
        --manual_dir ~/downloads/dogs --imagenet_val_dir ~/ILSVRC2012_val
    tftransfer prepare --dataset class_folders --data_dir ~/tfds \\
        --manual_dir ~/my_dataset

What to put in each manual_dir: docs/data.md (and the error message when it is missing);
it is only read. Logs (absl, INFO) each split's image count and the files left out when it
was prepared, by kind. Also ``python -m tftransfer_cli.prepare`` (or ``python
tools/prepare_dataset.py`` in a checkout). Needs the ``datasets`` extra.
"""
import argparse

from absl import logging

from tftransfer_cli.common import require_choice


def build_parser():
    parser = argparse.ArgumentParser(prog="tftransfer prepare",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True,
                        help="a name of tftransfer.data.pipeline.DATASET_NAMES (caltech256_30, "
                             "caltech256_60, mit_indoor67, stanford_dogs120, food101, "
                             "class_folders, ...)")
    parser.add_argument("--data_dir", required=True, help="where prepared data is written")
    parser.add_argument("--manual_dir", help="the local original files "
                        "(default <data_dir>/manual/<dataset>)")
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--keep_aspect", action="store_true",
                        help="shorter side = resize (the starred variant) instead of square")
    parser.add_argument("--split_seed", type=int, default=0, help="Caltech split seed")
    parser.add_argument("--test_set", default="imagenet_val", choices=("imagenet_val", "official"),
                        help="Stanford Dogs test set")
    parser.add_argument("--imagenet_val_dir", help="ILSVRC-2012 validation JPEGs (Dogs test)")
    parser.add_argument("--imagenet_data_dir", help="tfds dir with imagenet2012 (Dogs test)")
    parser.add_argument("--source_data_dir", help="tfds dir of food101/imagenet2012/places365")
    parser.add_argument("--download", action="store_true",
                        help="allow tfds to download food101 / places365_small")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from tftransfer.data import pipeline, stats
    from tftransfer.data.builders import base
    require_choice(parser, "--dataset", args.dataset, pipeline.DATASET_NAMES)

    options = {
        "caltech256_30": {"split_seed": args.split_seed},
        "caltech256_60": {"split_seed": args.split_seed},
        "stanford_dogs120": {"test_set": args.test_set, "imagenet_val_dir": args.imagenet_val_dir,
                             "imagenet_data_dir": args.imagenet_data_dir},
        **{s: {"source_data_dir": args.source_data_dir, "download": args.download}
           for s in ("food101", "imagenet2012", "places365_small")},
    }.get(args.dataset, {})
    builder = pipeline.prepare(args.dataset, args.data_dir, args.manual_dir, args.resize,
                               args.keep_aspect, **options)
    skipped = base.skipped_files(builder)
    for split, info in builder.info.splits.items():
        left_out = (base.describe_skipped(skipped[split]) if split in skipped
                    else "not recorded (prepared by an older version)")
        logging.info("%s: %d images; skipped %s", split, info.num_examples, left_out)
    mean = (stats.load_channel_mean(builder)
            or stats.store_channel_mean(builder, builder.TRAIN_SPLIT))
    logging.info("training mean (RGB): %s, stored in %s", mean, stats.mean_path(builder))
    logging.info("prepared in %s", builder.data_dir)


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
