"""Cost of 10-crop evaluation / cost of centre-crop evaluation, same model, same images.

Both passes run the evaluation path of the driver on the same uint8 images (resized to
``--resize``): ``tftransfer.data.pipeline.test_dataset`` (mean subtraction, then the
central crop or the 10 crops of ``preprocessing.test_transform``, batched) scored by
``tftransfer.data.evaluation.crop_accuracy`` (one model call per batch, on
``[B * 10, crop, crop, 3]`` for 10 crops, probabilities averaged). A 10-crop pass does ten
times the model's work, so its cost ratio should be close to 10 (at most 10.5: the crops
and the averaging must cost little beside the network).

Timed passes alternate ABBA (centre, ten, ten, centre, ...) ``--repetitions`` times after a
warm-up pass of each; the figure is the median of the per-pair ratios ten / centre.
Prints by default; ``--write`` also writes the ``bench_eval`` section of BENCHMARKS.md.

    python -m benchmarks.bench_eval [--arch resnet50] [--resize 256] [--crop 224]
        [--batch_size 16] [--num_images 64] [--repetitions 4] [--write]
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

# TensorFlow, Keras and tftransfer are imported where they are used, so that --help and a
# usage error never start TensorFlow.

VARIANTS = ("center", "ten")
CROPS_PER_VARIANT = {"center": 1, "ten": 10}
TARGET_RATIO = 10.5


class ArrayStore:
    """In-memory stand-in for a prepared tfds builder (the part ``pipeline.test_dataset``
    reads): every split is the ``(uint8 image, label)`` pairs of the given arrays."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def as_dataset(self, split, as_supervised=True, shuffle_files=False, **unused):
        del split, shuffle_files, unused
        if not as_supervised:
            raise ValueError("ArrayStore serves (image, label) pairs only (as_supervised).")
        import tensorflow as tf
        return tf.data.Dataset.from_tensor_slices((self.images, self.labels))


def random_store(num_images, resize, num_classes, seed=0):
    """An :class:`ArrayStore` of ``num_images`` random uint8 ``resize x resize`` images."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num_images, resize, resize, 3), dtype=np.uint8)
    return ArrayStore(images, rng.integers(0, num_classes, num_images).astype(np.int64))


def eval_datasets(store, batch_size, crop, split="train", mean=None):
    """``{"center": dataset, "ten": dataset}``: the driver's test pipeline on ``store``
    (``mean``: default ImageNet's)."""
    from tftransfer.data import pipeline, preprocessing
    mean = preprocessing.IMAGENET_MEAN if mean is None else mean
    return {v: pipeline.test_dataset(store, split, batch_size, crop, mean, crops=v)
            for v in VARIANTS}


def abba_order(repetitions, variants=VARIANTS):
    """The timed order ``A B B A A B ...``: pair ``i`` is ``(A, B)`` for even ``i`` and
    ``(B, A)`` for odd ``i``, so that a drift of the machine's speed hits both alike."""
    a, b = variants
    return [v for i in range(repetitions) for v in ((a, b) if i % 2 == 0 else (b, a))]


def pair_ratios(times, numerator="ten", denominator="center"):
    """Per-repetition ratios ``times[numerator][i] / times[denominator][i]``."""
    if len(times[numerator]) != len(times[denominator]) or not times[numerator]:
        raise ValueError(f"need as many {numerator} as {denominator} timings (at least "
                         f"one), got {len(times[numerator])} and {len(times[denominator])}.")
    return [n / d for n, d in zip(times[numerator], times[denominator])]


def summarize(times, num_images, cpu_times=None):
    """Medians of ``{variant: [seconds per pass]}``: ``{"ratio": median of the pair ratios
    ten / centre, "ratios": [...], "<variant>_s": median seconds, "<variant>_images_per_s":
    num_images / median seconds}``; with ``cpu_times`` (process CPU seconds, less disturbed
    by other processes on a shared machine) also ``"cpu_ratio"`` and ``"cpu_ratios"``."""
    ratios = pair_ratios(times)
    out = {"ratio": statistics.median(ratios), "ratios": ratios}
    if cpu_times is not None:
        out["cpu_ratios"] = pair_ratios(cpu_times)
        out["cpu_ratio"] = statistics.median(out["cpu_ratios"])
    for variant in VARIANTS:
        median = statistics.median(times[variant])
        out[f"{variant}_s"] = median
        out[f"{variant}_images_per_s"] = num_images / median
    return out


def timed_pass(model, dataset):
    """(wall, process CPU) seconds of one ``crop_accuracy`` pass (it reads every score
    back: synchronous)."""
    from tftransfer.data import evaluation
    wall, cpu = time.perf_counter(), time.process_time()
    evaluation.crop_accuracy(model, dataset)
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(model, datasets, repetitions, log=print):
    """``({variant: [wall seconds]}, {variant: [CPU seconds]})`` of ABBA-ordered passes,
    after one warm-up pass of each."""
    for variant in VARIANTS:
        timed_pass(model, datasets[variant])
    times, cpu_times = {v: [] for v in VARIANTS}, {v: [] for v in VARIANTS}
    for i, variant in enumerate(abba_order(repetitions)):
        wall, cpu = timed_pass(model, datasets[variant])
        times[variant].append(wall)
        cpu_times[variant].append(cpu)
        log(f"  pass {i + 1}/{2 * repetitions}: {variant:6s} {wall:.3f} s wall, {cpu:.3f} s "
            "CPU")
    return times, cpu_times


def build_model(arch, crop, num_classes, arch_kwargs=None):
    """A randomly initialised (``source="none"``) target network of ``arch``."""
    from tftransfer.models.build import build
    return build(arch, num_classes, "none", input_shape=(crop, crop, 3), seed=0,
                 arch_kwargs=arch_kwargs).model


def markdown(summary, args, command):
    """The ``bench_eval`` section of BENCHMARKS.md."""
    import keras
    import tensorflow as tf
    verdict = "within" if summary["ratio"] <= TARGET_RATIO else "ABOVE"
    return "\n".join([
        "## 10-crop evaluation cost / centre-crop cost",
        "",
        f"{args.arch} (random weights, {args.num_classes} classes), {args.num_images} random "
        f"{args.resize}x{args.resize} uint8 images, {args.crop} crops, batch "
        f"{args.batch_size} images ({10 * args.batch_size} crops per model call), the "
        "driver's path (pipeline.test_dataset + evaluation.crop_accuracy); "
        f"{args.repetitions} ABBA pairs after a warm-up pass of each. "
        f"{platform.machine()}, {os.cpu_count()} cores, TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}.",
        "",
        "| evaluation | median s per pass | images/s |",
        "|---|---|---|",
        *(f"| {v} | {summary[f'{v}_s']:.3f} | {summary[f'{v}_images_per_s']:.1f} |"
          for v in VARIANTS),
        "",
        f"Per-pair ratios: {', '.join(f'{r:.2f}' for r in summary['ratios'])}",
        "",
        f"**Median ratio 10-crop / centre: {summary['ratio']:.2f}** ({verdict} the target "
        f"<= {TARGET_RATIO}; 10 is the network's share alone). Process CPU time: median "
        f"ratio {summary['cpu_ratio']:.2f} (pairs: "
        f"{', '.join(f'{r:.2f}' for r in summary['cpu_ratios'])}), less disturbed by other "
        "processes on a shared machine.",
        "",
        f"Rerun: `{command}`",
    ])


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet50",
                        help="an architecture of tftransfer.models.build.ARCHS")
    parser.add_argument("--resize", type=int, default=256, help="stored image side")
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=16, help="images per batch")
    parser.add_argument("--num_images", type=int, default=64)
    parser.add_argument("--num_classes", type=int, default=100)
    parser.add_argument("--repetitions", type=int, default=4, help="ABBA pairs")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md")
    args = parser.parse_args(argv)
    if args.crop > args.resize:
        parser.error(f"--crop={args.crop} exceeds --resize={args.resize}; lower --crop.")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    command = "python -m benchmarks.bench_eval " + " ".join(
        sys.argv[1:] if argv is None else argv)
    from benchmarks import report as benchmark_report
    from tftransfer.models.build import ARCHS
    if args.arch not in ARCHS:
        raise SystemExit(f"--arch={args.arch} is not one of {list(ARCHS)}.")
    model = build_model(args.arch, args.crop, args.num_classes)
    datasets = eval_datasets(random_store(args.num_images, args.resize, args.num_classes),
                             args.batch_size, args.crop)
    print(f"Timing {args.repetitions} ABBA pairs of centre / 10-crop passes ...", flush=True)
    times, cpu_times = measure(model, datasets, args.repetitions)
    summary = summarize(times, args.num_images, cpu_times)
    text = markdown(summary, args, command.strip())
    benchmark_report.publish("bench_eval", text, args.write)
    return summary


if __name__ == "__main__":
    main()
