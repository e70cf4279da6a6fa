"""t-SNE map of one layer's weights across runs and snapshots (papers/000 Figure 4), PNG + CSV.

    python tools/weight_map.py --variable stage3_block1_2_conv/kernel \
        --run pretrained/cars=ft_cars_1.keras --run random/cars=scratch_cars_1.keras ... \
        --out_dir outputs/weight_map [--perplexity 5]

Each ``--run LABEL=model.keras`` adds one point; points sharing a label get one colour.
Needs scikit-learn (``pip install scikit-learn``).
"""
import argparse
import os

from tftransfer.analysis import weight_map
from tftransfer.analysis._io import load_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variable", required=True, help="variable path, e.g. conv/kernel")
    parser.add_argument("--run", action="append", required=True,
                        help="LABEL=model.keras, repeatable (labels may repeat)")
    parser.add_argument("--perplexity", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args(argv)
    labels, weights = [], []
    for item in args.run:
        label, sep, path = item.partition("=")
        if not sep:
            raise ValueError(f"expected LABEL=PATH, got {item!r}.")
        by_path = {v.path: v for v in load_model(path).variables}
        if args.variable not in by_path:
            raise ValueError(f"{path!r} has no variable {args.variable!r}; it has "
                             f"{sorted(by_path)}.")
        labels.append(label)
        weights.append(by_path[args.variable].numpy())
    frame = weight_map.weight_map(labels, weights, args.perplexity, args.seed)
    png = os.path.join(args.out_dir, "weight_map.png")
    csv = os.path.join(args.out_dir, "weight_map.csv")
    weight_map.plot_weight_map(frame, png, csv, title=f"t-SNE of {args.variable}")
    print(f"wrote {png} and {csv}")
    return png, csv


if __name__ == "__main__":
    main()
