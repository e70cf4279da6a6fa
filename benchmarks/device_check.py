"""One accelerator-machine check of training, input and evaluation speed (issue 20).

Measures, in one process, in under 8 minutes on an H100/H200-class GPU:

1. the input pipeline's images/s on all cores: the prepared uint8 store path
   (``tftransfer.data.pipeline.train_dataset``, random crop, mirror, the paper's colour
   jitter, mean subtraction) on synthetic JPEGs prepared once (``benchmarks.bench_input``);
2. 10-crop evaluation images/s, and its cost over centre-crop evaluation, of the
   float32 network on that store (``benchmarks.bench_eval``: the driver's test pipeline and
   ``crop_accuracy``, ABBA, medians);
3. train-step images/s of the driver's compiled model (``tftransfer.training.model.
   build_compiled``: from a random source network saved as ``--source=custom`` weights,
   so that L2-SP penalises every inherited kernel; SGD with momentum, the penalty, ``auto_scale_loss``,
   which wraps the optimizer in a ``LossScaleOptimizer`` under ``mixed_float16``) for each
   configuration ``precision-xla|noxla-scheme`` of ``--configs``: warm-up steps (tracing,
   XLA compilation), then ``--timed_blocks`` blocks of ``--timed_steps`` steps; the median
   block gives the figure. A configuration that fails (no bfloat16 kernels, out of memory)
   records its error and the run goes on; one that would overrun ``--budget_s`` (judged by
   the slowest configuration so far) is recorded as skipped.

Writes ``device_check.json`` (every figure, the device name, TensorFlow and Keras versions,
date, command, elapsed seconds) and ``device_check.md`` (the same as a table) under
``--output_dir``. ``--cpu_smoke`` runs every code path in seconds on CPU (a tiny
small_resnet, a few images, one or two steps). ``--from_json FILE --write`` puts the tables
of an earlier run (e.g. one brought back from a GPU machine) into BENCHMARKS.md.

    benchmarks/device_check.sh --output_dir runs/device_check
    python -m benchmarks.device_check --from_json runs/device_check/device_check.json --write
"""
import argparse
import dataclasses
import datetime
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback

import numpy as np

DEFAULT_CONFIGS = (
    "float32-noxla-none", "float32-noxla-l2_sp", "mixed_bfloat16-noxla-none",
    "mixed_float16-noxla-none", "float32-xla-none", "mixed_bfloat16-xla-none",
    "mixed_bfloat16-xla-l2_sp", "mixed_float16-xla-none")
# --cpu_smoke: every precision (float16 with its LossScaleOptimizer), XLA on and off, both
# penalties, in three configurations.
SMOKE_CONFIGS = ("float32-noxla-none", "mixed_bfloat16-noxla-l2_sp", "mixed_float16-xla-none")
SECTION = "device_check"


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What one run measures on: the full check or the CPU smoke run."""
    arch: str = "resnet101"
    model_widths: tuple = ()
    image_size: int = 224
    batch_size: int = 64
    num_classes: int = 100
    warmup_steps: int = 3
    timed_steps: int = 15
    timed_blocks: int = 2
    input_images: int = 512
    min_side: int = 300
    max_side: int = 500
    resize: int = 256
    input_batch: int = 64
    input_epochs: int = 4
    eval_batch: int = 32
    eval_repetitions: int = 2
    budget_s: float = 420.0


SMOKE = Sizes(arch="small_resnet", model_widths=(4,), image_size=16, batch_size=2,
              num_classes=3, warmup_steps=1, timed_steps=1, timed_blocks=1, input_images=8,
              min_side=20, max_side=30, resize=20, input_batch=4, input_epochs=1,
              eval_batch=4, eval_repetitions=1, budget_s=120.0)


def parse_config(name):
    """``"mixed_bfloat16-xla-l2_sp"`` -> ``("mixed_bfloat16", True, "l2_sp")``."""
    parts = name.split("-")
    if len(parts) != 3 or parts[1] not in ("xla", "noxla"):
        raise ValueError(f"configuration {name!r} is not precision-xla|noxla-scheme, e.g. "
                         "mixed_bfloat16-xla-l2_sp.")
    return parts[0], parts[1] == "xla", parts[2]


def device_name():
    """The first GPU's name (``tf.config.experimental.get_device_details``), else the CPU's."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability")
        return (f"{details.get('device_name', gpus[0].name)} (compute capability "
                f"{'.'.join(map(str, capability)) if capability else '?'}, {len(gpus)} GPU(s))")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU only: {cpu}"


def recorded(name, fn, log):
    """``fn()``'s dict with its seconds, or ``{"error": ...}`` if it raises (run goes on)."""
    start = time.perf_counter()
    try:
        out = fn()
    except Exception as error:  # a configuration that cannot run is a result, not a crash
        log(f"  {name} FAILED: {type(error).__name__}: {error}".splitlines()[0][:300])
        out = {"error": f"{type(error).__name__}: {error}"[:2000],
               "traceback": traceback.format_exc()[-4000:]}
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out


SOURCE_CLASSES = 10


def source_weights(root, sizes):
    """A random source network of ``sizes.arch`` with its ``SOURCE_CLASSES``-way classifier,
    saved once as ``root/source.weights.h5``: the ``--source=custom`` starting point, so that
    every kernel but the new head's is inherited and L2-SP penalises them (with
    ``--source=none`` every layer would be new and L2-SP would be L2 on all of them)."""
    import keras

    from tftransfer.models.build import resolve_layout, source_network

    path = os.path.join(root, "source.weights.h5")
    if not os.path.exists(path):
        keras.mixed_precision.set_dtype_policy("float32")
        widths = {"widths": tuple(sizes.model_widths)} if sizes.model_widths else None
        network, _ = source_network(
            sizes.arch, resolve_layout(sizes.arch, None),
            (sizes.image_size, sizes.image_size, 3), SOURCE_CLASSES, widths)
        network.save_weights(path)
        del network
        keras.backend.clear_session()
    return path


def train_throughput(config_name, sizes, root):
    """Images/s of the driver's train step for ``config_name`` (module docstring, 3)."""
    import keras
    import tensorflow as tf

    from tftransfer.training import config as config_lib
    from tftransfer.training import model as model_lib
    from tftransfer.training import strategy as strategy_lib

    precision, xla, scheme = parse_config(config_name)
    config = config_lib.make(arch=sizes.arch, source="custom",
                             weights=source_weights(root, sizes),
                             source_classes=SOURCE_CLASSES, scheme=scheme, alpha=0.1,
                             beta=0.01, precision=precision, xla=xla,
                             model_widths=list(sizes.model_widths), seed=0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-100, 100, (sizes.batch_size, sizes.image_size, sizes.image_size, 3))
    y = rng.integers(0, sizes.num_classes, sizes.batch_size)
    dataset = tf.data.Dataset.from_tensors((x.astype(np.float32), y)).repeat()
    try:
        compiled = model_lib.build_compiled(config, strategy_lib.make_strategy(config),
                                            sizes.num_classes,
                                            (sizes.image_size, sizes.image_size, 3))
        model = compiled.model

        def steps(count):
            start = time.perf_counter()
            history = model.fit(dataset, steps_per_epoch=count, epochs=1, verbose=0)
            int(model.optimizer.iterations.numpy())  # the last step has finished
            return time.perf_counter() - start, float(history.history["loss"][-1])

        warmup_s, _ = steps(sizes.warmup_steps)
        blocks = [steps(sizes.timed_steps) for _ in range(sizes.timed_blocks)]
        median_s = statistics.median(b[0] for b in blocks)
        return {"images_per_s": sizes.timed_steps * sizes.batch_size / median_s,
                "step_ms": 1000 * median_s / sizes.timed_steps,
                "block_s": [round(b[0], 4) for b in blocks], "warmup_s": round(warmup_s, 2),
                "loss": blocks[-1][1], "optimizer": type(model.optimizer).__name__,
                "penalised_kernels": len(compiled.plan.inherited),
                "compute_dtype": model.dtype_policy.compute_dtype}
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
        keras.backend.clear_session()
        gc.collect()


def prepare_store(root, sizes, log):
    """Synthetic JPEGs prepared once as the uint8 store (``bench_input``'s functions)."""
    from benchmarks import bench_input
    from tftransfer.data import pipeline

    log(f"  writing {sizes.input_images} JPEGs ...")
    bench_input.write_jpegs(os.path.join(root, "jpegs"), sizes.input_images, 10,
                            sizes.min_side, sizes.max_side, seed=0)
    start = time.perf_counter()
    builder = pipeline.prepare("class_folders", os.path.join(root, "data"),
                               os.path.join(root, "jpegs"), resize=sizes.resize)
    return builder, time.perf_counter() - start


def input_throughput(builder, sizes, prepare_s):
    """Images/s of the prepared-store training pipeline with the paper's colour jitter."""
    from benchmarks import bench_input
    from tftransfer.data import pipeline, preprocessing

    dataset = pipeline.train_dataset(builder, "train", sizes.input_batch, sizes.image_size,
                                     preprocessing.IMAGENET_MEAN, seed=0, color_jitter=True)
    return {"images_per_s": bench_input.images_per_second(dataset, sizes.input_epochs),
            "cpu_cores": os.cpu_count(), "prepare_s": round(prepare_s, 2)}


def eval_throughput(builder, sizes, log):
    """10-crop and centre-crop evaluation images/s of the float32 network on the store."""
    import keras

    from benchmarks import bench_eval

    keras.mixed_precision.set_dtype_policy("float32")
    widths = {"widths": tuple(sizes.model_widths)} if sizes.model_widths else None
    model = bench_eval.build_model(sizes.arch, sizes.image_size, sizes.num_classes, widths)
    try:
        datasets = bench_eval.eval_datasets(builder, sizes.eval_batch, sizes.image_size)
        times, cpu_times = bench_eval.measure(model, datasets, sizes.eval_repetitions, log)
        summary = bench_eval.summarize(times, sizes.input_images, cpu_times)
        return {"images_per_s": summary["ten_images_per_s"],
                "center_images_per_s": summary["center_images_per_s"],
                "ratio_ten_over_center": summary["ratio"], "ratios": summary["ratios"],
                "cpu_ratio_ten_over_center": summary["cpu_ratio"]}
    finally:
        del model
        keras.backend.clear_session()
        gc.collect()


def run_checks(sizes, configs, log=print):
    """Every measurement of the module docstring; returns ``{"results": {...}, ...}``."""
    start = time.perf_counter()
    results = {}
    root = tempfile.mkdtemp(prefix="device_check_")
    try:
        log("Input pipeline (prepared uint8 store, colour jitter) ...")
        store = {}

        def prepare_and_time():
            store["builder"], prepare_s = prepare_store(root, sizes, log)
            return input_throughput(store["builder"], sizes, prepare_s)

        results["input_pipeline"] = recorded("input_pipeline", prepare_and_time, log)
        log("10-crop evaluation ...")
        results["eval_ten_crop"] = (
            recorded("eval_ten_crop", lambda: eval_throughput(store["builder"], sizes, log),
                     log) if "builder" in store else
            {"error": "skipped: the input store could not be prepared", "seconds": 0.0})
        slowest = 0.0
        for name in configs:
            elapsed = time.perf_counter() - start
            if elapsed + slowest > sizes.budget_s:
                results[name] = {"error": f"skipped: {elapsed:.0f} s elapsed + {slowest:.0f} s "
                                 f"for the slowest configuration > --budget_s "
                                 f"{sizes.budget_s:.0f}", "seconds": 0.0}
                log(f"  {name}: {results[name]['error']}")
                continue
            log(f"Train step {name} ...")
            results[name] = recorded(name, lambda n=name: train_throughput(n, sizes, root),
                                     log)
            slowest = max(slowest, results[name]["seconds"])
            if "images_per_s" in results[name]:
                log(f"  {results[name]['images_per_s']:.1f} images/s "
                    f"({results[name]['seconds']:.0f} s with build and warm-up)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results, time.perf_counter() - start


def environment():
    """Device name, versions, date."""
    import keras
    import tensorflow as tf

    return {"device": device_name(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "python": platform.python_version(), "cpu_cores": os.cpu_count(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _figure(result, key="images_per_s"):
    if "error" in result:
        return "failed" if not result["error"].startswith("skipped") else "skipped"
    return f"{result[key]:.1f}"


def markdown(report):
    """The ``device_check`` section of BENCHMARKS.md from a results dict."""
    sizes, env, results = report["sizes"], report["environment"], report["results"]
    rows = []
    for name in report["configs"]:
        r = results[name]
        precision, xla, scheme = parse_config(name)
        extra = (f"{r['step_ms']:.1f} | {r['optimizer']} | warm-up {r['warmup_s']:.0f} s"
                 if "images_per_s" in r else f"- | - | {r['error'].splitlines()[0][:120].replace('|', '/')}")
        rows.append(f"| {precision} | {'on' if xla else 'off'} | {scheme} | "
                    f"{_figure(r)} | {extra} |")
    inp, ev = results["input_pipeline"], results["eval_ten_crop"]
    lines = [
        "## Accelerator check: train step, input pipeline, 10-crop evaluation",
        "",
        f"{env['device']}; TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
        f"{env['cpu_cores']} CPU cores, {env['date']}; whole check "
        f"{report['elapsed_s']:.0f} s.",
        "",
        f"Train step: the driver's compiled {sizes['arch']} (random custom source weights, "
        f"{sizes['num_classes']} classes), batch {sizes['batch_size']} at "
        f"{sizes['image_size']}x{sizes['image_size']}, {sizes['warmup_steps']} warm-up steps, "
        f"median of {sizes['timed_blocks']} blocks of {sizes['timed_steps']} steps.",
        "",
        "| precision | XLA | penalty | images/s | ms/step | optimizer | note |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Input pipeline (prepared uint8 store, random crop, mirror, colour jitter, mean; "
        f"batch {sizes['input_batch']}, all cores): **{_figure(inp)} images/s**.",
        "",
        f"10-crop evaluation (float32 {sizes['arch']}, batch {sizes['eval_batch']} images): "
        f"**{_figure(ev)} images/s**"
        + (f", centre crop {ev['center_images_per_s']:.1f} images/s, cost ratio "
           f"{ev['ratio_ten_over_center']:.2f}." if "images_per_s" in ev else "."),
        "",
        f"Command: `{report['command']}`",
    ]
    return "\n".join(lines)


def write_outputs(report, output_dir):
    """``device_check.json`` and ``device_check.md`` under ``output_dir``; returns paths."""
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, "device_check.json")
    md_path = os.path.join(output_dir, "device_check.md")
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(markdown(report) + "\n")
    return json_path, md_path


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="runs/device_check")
    parser.add_argument("--cpu_smoke", action="store_true",
                        help="tiny sizes on CPU, every code path, seconds")
    parser.add_argument("--configs", default=None,
                        help="comma-separated precision-xla|noxla-scheme (default: "
                             f"{','.join(DEFAULT_CONFIGS)}; smoke: {','.join(SMOKE_CONFIGS)})")
    parser.add_argument("--write", action="store_true",
                        help="also write the device_check section of BENCHMARKS.md")
    parser.add_argument("--from_json", default=None,
                        help="measure nothing: render this earlier device_check.json")
    for field in dataclasses.fields(Sizes):
        if field.type in (int, float, "int", "float"):
            parser.add_argument(f"--{field.name}", type=type(field.default), default=None,
                                help=f"override (default {field.default}; smoke "
                                     f"{getattr(SMOKE, field.name)})")
    parser.add_argument("--arch", default=None)
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as f:
            report = json.load(f)
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if args.cpu_smoke:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        try:
            import tensorflow  # noqa: F401  (the check needs it; say so before any work)
        except ImportError as error:
            sys.exit(f"device_check needs TensorFlow, Keras 3, tensorflow-datasets and Pillow "
                     f"in the Python it runs ({sys.executable}: {error}); point $PYTHON at "
                     "one that has them (e.g. this repository's .venv/bin/python).")
        base = SMOKE if args.cpu_smoke else Sizes()
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Sizes)
                     if getattr(args, f.name, None) is not None}
        sizes = dataclasses.replace(base, **overrides)
        configs = ([c.strip() for c in args.configs.split(",") if c.strip()] if args.configs
                   else list(SMOKE_CONFIGS if args.cpu_smoke else DEFAULT_CONFIGS))
        for name in configs:
            parse_config(name)  # a malformed name is a usage error, before any work
        command = "benchmarks/device_check.sh " + " ".join(argv)
        print(f"device_check: {command}", flush=True)
        env = environment()
        print(f"device: {env['device']}; TensorFlow {env['tensorflow']}, Keras "
              f"{env['keras']}", flush=True)
        results, elapsed = run_checks(sizes, configs,
                                      log=lambda m: print(m, flush=True))
        report = {"command": command.strip(), "environment": env,
                  "sizes": dataclasses.asdict(sizes), "configs": configs,
                  "results": results, "elapsed_s": round(elapsed, 1)}
        for path in write_outputs(report, args.output_dir):
            print(f"wrote {path}")
        print(f"elapsed: {elapsed:.1f} s (target < 480 s for the full check)")
    text = markdown(report)
    from benchmarks import report as benchmark_report
    benchmark_report.publish(SECTION, text, args.write)
    return report


if __name__ == "__main__":
    main()
