"""Computes the per-channel mean of a prepared training split and stores it with the data.

    python tools/compute_mean.py --dataset caltech256_30 --data_dir ~/tfds [--keep_aspect]

The mean (RGB, 0..255, over every pixel of the stored training images) goes to
``channel_mean.json`` in the dataset's directory; ``load_datasets(..., mean="dataset")``
subtracts it. Rerunning overwrites it.
"""
import argparse

from absl import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True,
                        help="a dataset of tftransfer.data.pipeline (e.g. caltech256_30)")
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--manual_dir", help="needed for class_folders (names the dataset)")
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--keep_aspect", action="store_true")
    parser.add_argument("--split_seed", type=int, default=0, help="Caltech split seed")
    parser.add_argument("--test_set", default="imagenet_val", help="Stanford Dogs test set")
    args = parser.parse_args(argv)
    # TensorFlow (through tftransfer) only now: --help and usage errors are instant
    from tftransfer.data import pipeline, stats
    if args.dataset not in pipeline.DATASET_NAMES:
        parser.error(f"argument --dataset: invalid choice {args.dataset!r} (choose from "
                     f"{', '.join(sorted(pipeline.DATASET_NAMES))})")

    options = {"caltech256_30": {"split_seed": args.split_seed},
               "caltech256_60": {"split_seed": args.split_seed},
               "stanford_dogs120": {"test_set": args.test_set}}.get(args.dataset, {})
    builder = pipeline.get_builder(args.dataset, args.data_dir, args.manual_dir, args.resize,
                                   args.keep_aspect, **options)
    if not builder.is_prepared():
        raise SystemExit(f"{args.dataset} is not prepared in {builder.data_dir}; run "
                         "tools/prepare_dataset.py first.")
    mean = stats.store_channel_mean(builder, builder.TRAIN_SPLIT)
    logging.info("RGB mean %s written to %s", mean, stats.mean_path(builder))


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
