"""t-SNE map of one layer's weights across runs and snapshots (Liu et al. 2019,
"Towards Understanding the Transferability of Deep Representations", Figure 4), PNG + CSV.

    python tools/weight_map.py --variable stage3_block1_2_conv/kernel \
        --run pretrained/cars=ft_cars_1.keras --run random/cars=scratch_cars_1.keras ... \
        --out_dir outputs/weight_map [--perplexity 5]

Each ``--run LABEL=model.keras`` adds one point; points sharing a label get one colour.
Needs scikit-learn (``pip install scikit-learn``).
"""
import argparse

from absl import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variable", required=True, help="variable path, e.g. conv/kernel")
    parser.add_argument("--run", action="append", required=True,
                        help="LABEL=model.keras, repeatable (labels may repeat)")
    parser.add_argument("--perplexity", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args(argv)
    # TensorFlow (through tftransfer) only now: --help and usage errors are instant
    from tftransfer.analysis import plots, weight_map
    from tftransfer.analysis.cli import load_model, parse_named, write_outputs
    labels, weights = [], []
    for item in args.run:  # labels may repeat, so one item at a time
        (label, path), = parse_named([item]).items()
        by_path = {v.path: v for v in load_model(path).variables}
        if args.variable not in by_path:
            raise ValueError(f"{path!r} has no variable {args.variable!r}; it has "
                             f"{sorted(by_path)}.")
        labels.append(label)
        weights.append(by_path[args.variable].numpy())
    frame = weight_map.weight_map(labels, weights, args.perplexity, args.seed)
    outputs = write_outputs(args.out_dir, "weight_map", frame,
                            plots.plot_weight_map(frame, title=f"t-SNE of {args.variable}"))
    return outputs


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
