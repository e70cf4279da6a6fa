"""Trains a model from its starting point and plots ``||W - W0||_F / sqrt(n)`` per layer
(Liu et al. 2019, "Towards Understanding the Transferability of Deep Representations",
Figure 2), PNG plus CSV.

    python tools/weight_deviation.py --model start.keras --data target_train.npz \
        --out_dir outputs/deviation [--epochs 5] [--learning_rate 0.01] [--every_n_batches 10]

In your own training, add ``tftransfer.analysis.deviation.WeightDeviation(csv, png)`` to
``model.fit(..., callbacks=[...])`` instead.
"""
import argparse

from absl import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help=".keras starting point (logits)")
    parser.add_argument("--data", required=True, help=".npz with 'x' and 'y'")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--every_n_batches", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # TensorFlow (through tftransfer) only now: --help and usage errors are instant
    from tftransfer.analysis import deviation, plots
    from tftransfer.analysis.cli import fit_sgd, load_arrays, load_model, write_outputs
    model = load_model(args.model)
    x, y = load_arrays(args.data)
    callback = deviation.WeightDeviation(every_n_batches=args.every_n_batches)
    fit_sgd(model, x, y, args.epochs, args.learning_rate, args.batch_size, [callback], args.seed)
    frame = callback.frame()
    outputs = write_outputs(args.out_dir, "weight_deviation", frame, plots.plot_deviation(frame))
    return outputs


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
