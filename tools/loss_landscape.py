"""1-D and 2-D loss landscapes around a model's weights along filter-normalised random
directions (H. Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets", as used by
Liu et al. 2019, "Towards Understanding the Transferability of Deep Representations",
Figures 3, 5, 10, 12, 13), PNG plus CSV.

    python tools/loss_landscape.py --model start_or_solution.keras --data target.npz \
        --out_dir outputs/landscape [--radius 1.0] [--points 21] [--grid 11] \
        [--paths stage3_block1_2_conv/kernel] [--max_examples 512]

The landscape is centred at the weights stored in ``--model`` (the starting point or the
solution); ``--paths`` restricts the perturbation to some variables (one layer).
"""
import argparse

import numpy as np
from absl import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help=".npz with 'x' and 'y'")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--radius", type=float, default=1.0)
    parser.add_argument("--points", type=int, default=21, help="points of the 1-D slice")
    parser.add_argument("--grid", type=int, default=11, help="points per axis, 2-D (0: skip)")
    parser.add_argument("--paths", default=None, help="comma-separated variable paths")
    parser.add_argument("--max_examples", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # TensorFlow (through tftransfer) only now: --help and usage errors are instant
    from tftransfer.analysis import landscape, plots
    from tftransfer.analysis.cli import load_arrays, load_model, write_outputs
    model = load_model(args.model)
    x, y = load_arrays(args.data)
    data = (x[:args.max_examples], y[:args.max_examples])
    paths = args.paths.split(",") if args.paths else None
    alphas = np.linspace(-args.radius, args.radius, args.points)
    logging.info(f"1-D slice: {args.points} points")
    frame = landscape.slice_1d(model, data, alphas, paths, args.seed, args.batch_size,
                               progress=True)
    outputs = write_outputs(args.out_dir, "landscape_1d", frame, plots.plot_slice_1d(frame))
    if args.grid:
        grid = np.linspace(-args.radius, args.radius, args.grid)
        logging.info(f"2-D slice: {args.grid}x{args.grid} points")
        frame = landscape.slice_2d(model, data, grid, grid, paths, args.seed,
                                   args.batch_size, progress=True)
        outputs += write_outputs(args.out_dir, "landscape_2d", frame, plots.plot_slice_2d(frame))
    return outputs


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
