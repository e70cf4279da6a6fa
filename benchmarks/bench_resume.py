"""Resuming the training input: time to the first batch of the stream started at batch k.

Writes a synthetic class-per-folder set of JPEGs (``bench_input.write_jpegs``), prepares it
(uint8 store, 256x256) and its random-access copy once, then times, for k = 100 and
k = 5000, building the prepared-store training stream at batch k
(``pipeline.train_dataset(..., repeat=True, start_batch=k)``: open the copy, build the
tf.data graph) and taking its first batch (random 224 crop, mirror, colour jitter, batch
64). The two k alternate (ABBA), several repetitions; medians and their ratio (O(1):
about 1). Also the stream's throughput (images/s over ``--batches`` batches after the
first) against the one-pass TFRecord pipeline, ABBA. ``--skip_k`` > 0 also times the
former resume, ``train.skip(k)`` of the stream from 0, at that k (once: it replays k
batches).

    python -m benchmarks.bench_resume [--num_images 2000] [--reps 5] [--write]

Prints the figures; ``--write`` also writes them into BENCHMARKS.md (``bench_resume``).
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

from benchmarks.bench_input import write_jpegs

# TensorFlow and tftransfer are imported where they are used, so that --help and a usage
# error never start TensorFlow.


def first_batch_seconds(builder, args, k):
    """Seconds from building the stream at batch ``k`` to its first batch."""
    from tftransfer.data import pipeline, preprocessing
    start = time.perf_counter()
    ds = pipeline.train_dataset(builder, "train", args.batch_size, args.crop,
                                preprocessing.IMAGENET_MEAN,
                                seed=args.seed, repeat=True, start_batch=k)
    next(iter(ds))
    return time.perf_counter() - start


def skip_seconds(builder, args, k):
    """The former resume: the stream from 0, ``skip(k)``, first batch."""
    from tftransfer.data import pipeline, preprocessing
    start = time.perf_counter()
    ds = pipeline.train_dataset(builder, "train", args.batch_size, args.crop,
                                preprocessing.IMAGENET_MEAN,
                                seed=args.seed, repeat=True).skip(k)
    next(iter(ds))
    return time.perf_counter() - start


def images_per_second(dataset, batches):
    """Images/s over ``batches`` batches after the first (warm-up)."""
    iterator = iter(dataset)
    next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        count += int(next(iterator)[0].shape[0])
    return count / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_images", type=int, default=2000)
    parser.add_argument("--num_classes", type=int, default=10)
    parser.add_argument("--min_side", type=int, default=300)
    parser.add_argument("--max_side", type=int, default=500)
    parser.add_argument("--resize", type=int, default=256)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--ks", type=int, nargs=2, default=[100, 5000])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batches", type=int, default=30, help="throughput batches")
    parser.add_argument("--skip_k", type=int, default=0, help="also time skip(k) once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md")
    args = parser.parse_args(argv)
    from benchmarks import report as benchmark_report
    from tftransfer.data import pipeline, preprocessing, random_access

    load = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="bench_resume_")
    try:
        print(f"Writing {args.num_images} JPEGs to {tmp} ...", flush=True)
        write_jpegs(os.path.join(tmp, "jpegs"), args.num_images, args.num_classes,
                    args.min_side, args.max_side, args.seed)
        print("Preparing the uint8 store and its random-access copy ...", flush=True)
        builder = pipeline.prepare("class_folders", os.path.join(tmp, "data"),
                                   os.path.join(tmp, "jpegs"), resize=args.resize)
        start = time.perf_counter()
        random_access.open_store(builder, "train")
        copy_s = time.perf_counter() - start
        small, large = args.ks
        seconds = {small: [], large: []}
        rates = {"stream": [], "one_pass": []}
        first_batch_seconds(builder, args, small)  # warm-up (tracing, thread pools)
        for rep in range(args.reps):
            order = (small, large, large, small) if rep % 2 == 0 else (large, small, small,
                                                                        large)
            for k in order:
                seconds[k].append(first_batch_seconds(builder, args, k))
                print(f"  k={k}: {seconds[k][-1]:.3f} s to the first batch", flush=True)
        for rep in range(max(1, args.reps // 2)):
            for kind in ("stream", "one_pass", "one_pass", "stream"):
                ds = pipeline.train_dataset(builder, "train", args.batch_size, args.crop,
                                            preprocessing.IMAGENET_MEAN, seed=args.seed, repeat=kind == "stream")
                if kind == "one_pass":
                    ds = ds.repeat()
                rates[kind].append(images_per_second(ds, args.batches))
                print(f"  {kind}: {rates[kind][-1]:.0f} images/s", flush=True)
        skipped = skip_seconds(builder, args, args.skip_k) if args.skip_k else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in seconds.items()}
    rate = {k: statistics.median(v) for k, v in rates.items()}
    command = "python -m benchmarks.bench_resume " + " ".join(
        sys.argv[1:] if argv is None else argv)
    skip_line = (f"The former resume, `skip({args.skip_k})` of the stream from 0, took "
                 f"{skipped:.1f} s to its first batch (once).\n\n" if skipped else "")
    report = (
        "## Resuming the training input: time to the first batch at batch k\n\n"
        f"{args.num_images} synthetic JPEGs ({args.min_side}-{args.max_side} px sides), "
        f"prepared at {args.resize}x{args.resize}; the prepared-store training stream "
        f"(random {args.crop} crop, mirror, colour jitter, batch {args.batch_size}) built "
        f"at batch k and its first batch taken, after one warm-up; k alternated ABBA, {args.reps} "
        f"repetitions, medians; {os.cpu_count()} CPU cores (load average {load:.1f} at "
        f"start). Writing the random-access copy once took {copy_s:.1f} s.\n\n"
        "| k (batches consumed) | images before k | time to the first batch (s) |\n"
        "|---|---|---|\n"
        f"| {small} | {small * args.batch_size} | {med[small]:.3f} |\n"
        f"| {large} | {large * args.batch_size} | {med[large]:.3f} |\n\n"
        f"Ratio k={large} / k={small}: **{med[large] / med[small]:.2f}** (O(1): about 1).\n\n"
        f"{skip_line}"
        f"Throughput over {args.batches} batches (medians, ABBA): random-access stream "
        f"{rate['stream']:.0f} images/s, one-pass TFRecord pipeline "
        f"{rate['one_pass']:.0f} images/s.\n\n"
        f"Rerun: `{command.strip()}`\n")
    benchmark_report.publish("bench_resume", report, args.write)


if __name__ == "__main__":
    main()
