"""Training-input throughput: prepared uint8 shards vs decoding + resizing JPEGs each epoch.

Writes a synthetic class-per-folder set of JPEGs (random sizes) in a temporary directory,
prepares it once (decoded, resized to 256x256, stored as uint8 by the tfds builder, plus its
random-access copy), then times the same training pipeline (random 224 crop, mirror, mean
subtraction, with and without colour jitter, batches of 64, parallel map, prefetch) fed
either from the prepared store (the driver's stream, :mod:`tftransfer.data.random_access`)
or from the original JPEGs decoded and resized on every epoch. Reports images/s of both,
per core, and their ratio: ``--repetitions`` rounds in one process, the two pipelines
alternated (ABBA), medians. Prints the figures; ``--write`` also writes them into
BENCHMARKS.md (section ``bench_input``).

    python -m benchmarks.bench_input [--num_images 2000] [--epochs 1] [--repetitions 3]
    python -m benchmarks.bench_input --num_images 200 --repetitions 1   # smoke run
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

# TensorFlow and tftransfer are imported where they are used, so that --help and a usage
# error never start TensorFlow.


def write_jpegs(root, num_images, num_classes, min_side, max_side, seed):
    """``num_images`` JPEGs of random sizes in ``root/train/<class>/``; returns (paths, labels)."""
    from tests.fixtures import synthetic
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for i in range(num_images):
        label = i % num_classes
        h, w = (int(v) for v in rng.integers(min_side, max_side + 1, 2))
        path = os.path.join(root, "train", f"class{label:03d}", f"{i:05d}.jpg")
        synthetic.write_image(path, h, w, rng)
        paths.append(path)
        labels.append(label)
        if (i + 1) % 500 == 0:
            print(f"  wrote {i + 1}/{num_images} JPEGs", flush=True)
    return paths, labels


def jpeg_dataset(paths, labels, resize, batch_size, crop, seed, color_jitter):
    """The baseline: read, decode and resize every JPEG each epoch, then the same transform."""
    import tensorflow as tf

    from tftransfer.data import preprocessing
    def load(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(image, [resize, resize], method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    ds = tf.data.Dataset.from_tensor_slices((paths, labels)).shuffle(len(paths), seed=seed)
    ds = ds.map(lambda path, label: (load(path), label), num_parallel_calls=tf.data.AUTOTUNE)
    return preprocessing.augment_batches(ds, batch_size, crop, preprocessing.IMAGENET_MEAN,
                                         seed, jitter=color_jitter)


def images_per_second(dataset, epochs):
    """Images/s over ``epochs`` full passes, after one warm-up batch."""
    next(iter(dataset))
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _ in dataset:
            count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def alternated_rates(pipelines, epochs, repetitions):
    """``{kind: [images/s per round]}``, the kinds timed in ABBA order round after round."""
    rates = {kind: [] for kind in pipelines}
    for r in range(repetitions):
        for kind in (list(pipelines) if r % 2 == 0 else list(pipelines)[::-1]):
            rates[kind].append(images_per_second(pipelines[kind], epochs))
            print(f"  round {r + 1}: {kind} {rates[kind][-1]:.1f} images/s", flush=True)
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=2000,
                        help="synthetic JPEGs written and timed (e.g. 200 for a smoke run)")
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--min_side", type=int, default=300)
    parser.add_argument("--max_side", type=int, default=500)
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=3,
                        help="ABBA rounds of (JPEG, prepared) timings; medians reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true",
                        help="write the figures into BENCHMARKS.md (default: print only)")
    args = parser.parse_args(argv)
    if args.num_images < args.batch_size:
        parser.error(f"--num_images {args.num_images} is below --batch_size "
                     f"{args.batch_size}: no full training batch to time.")

    from benchmarks import report as benchmark_report
    from tftransfer.data import pipeline, preprocessing
    load = os.getloadavg()[0]
    cores = os.cpu_count()
    tmp = tempfile.mkdtemp(prefix="bench_input_")
    try:
        print(f"Writing {args.num_images} JPEGs to {tmp} ...", flush=True)
        paths, labels = write_jpegs(os.path.join(tmp, "jpegs"), args.num_images,
                                    args.num_classes, args.min_side, args.max_side, args.seed)
        print("Preparing the uint8 store (one decode + resize per image) ...", flush=True)
        start = time.perf_counter()
        builder = pipeline.prepare("class_folders", os.path.join(tmp, "data"),
                                   os.path.join(tmp, "jpegs"), resize=args.resize)
        prepare_s = time.perf_counter() - start
        rates = {}
        for jitter in (True, False):
            pipelines = {
                "jpeg": jpeg_dataset(paths, labels, args.resize, args.batch_size, args.crop,
                                     args.seed, jitter),
                # The driver's stream: stateless, random access, endless; one epoch of it.
                "prepared": pipeline.train_dataset(
                    builder, "train", args.batch_size, args.crop, preprocessing.IMAGENET_MEAN,
                    seed=args.seed, color_jitter=jitter, repeat=True).take(
                        args.num_images // args.batch_size)}
            print(f"Timing, colour jitter {jitter} ...", flush=True)
            rates[jitter] = alternated_rates(pipelines, args.epochs, args.repetitions)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--write"]
    rerun = " ".join(["python -m benchmarks.bench_input", *given, "--write"])
    rows = ""
    for j, label in ((True, "crop + mirror + colour jitter + mean (the paper's)"),
                     (False, "crop + mirror + mean (no colour jitter)")):
        jpeg, prepared = np.median(rates[j]["jpeg"]), np.median(rates[j]["prepared"])
        ratio = np.median(np.array(rates[j]["prepared"]) / np.array(rates[j]["jpeg"]))
        rows += (f"| {label} | {jpeg:.1f} | {prepared:.1f} | {prepared / cores:.1f} | "
                 f"**{ratio:.2f}x** |\n")
    report = (
        "## Input pipeline: prepared uint8 store vs JPEG decoding each epoch\n\n"
        f"{args.num_images} synthetic JPEGs ({args.min_side}-{args.max_side} px sides), "
        f"resized to {args.resize}x{args.resize}, random {args.crop} crops, batch "
        f"{args.batch_size}, {args.epochs} epoch(s) timed after a warm-up batch, "
        f"{args.repetitions} ABBA round(s), medians; {cores} CPU cores (load average "
        f"{load:.1f} at start). Preparing the store (one decode + resize per image) took "
        f"{prepare_s:.1f} s.\n\n"
        "| training transform | JPEG decode + resize every epoch (images/s) | "
        "prepared uint8 store (images/s) | prepared, per core | speed-up (median of "
        "per-round ratios) |\n|---|---|---|---|---|\n"
        f"{rows}\nBoth pipelines of a row run the same transform code in the same process "
        "(`preprocessing.train_transform` per example: crop, mirror, then colour jitter and "
        "mean subtraction fused by XLA).\n\n"
        f"Rerun: `{rerun}`\n")
    benchmark_report.publish("bench_input", report, args.write)


if __name__ == "__main__":
    main()
