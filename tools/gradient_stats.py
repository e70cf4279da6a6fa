"""Gradient statistics while training from a starting point (Liu et al. 2019, "Towards
Understanding the Transferability of Deep Representations", Figures 6, 7, 11): per-layer
gradient-norm distributions and the loss variation along the gradient, PNG + CSV.

    python tools/gradient_stats.py --model start.keras --data target_train.npz \
        --out_dir outputs/gradients [--init pretrained|random] [--epochs 3] \
        [--every_n_batches 10] [--probe_size 128]

``--init random`` re-initialises every layer of the model (same architecture) to compare
a pretrained start with a random one.
"""
import argparse

from absl import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help=".npz with 'x' and 'y'")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--init", choices=("pretrained", "random"), default="pretrained")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--every_n_batches", type=int, default=10)
    parser.add_argument("--probe_size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # TensorFlow (through tftransfer) only now: --help and usage errors are instant
    import keras
    from tftransfer.analysis import gradients, plots
    from tftransfer.analysis.cli import fit_sgd, load_arrays, load_model, write_outputs
    model = load_model(args.model)
    if args.init == "random":
        keras.utils.set_random_seed(args.seed)
        model = keras.models.clone_model(model)
    x, y = load_arrays(args.data)
    callback = gradients.GradientStatistics((x[:args.probe_size], y[:args.probe_size]),
                                            every_n_batches=args.every_n_batches)
    fit_sgd(model, x, y, args.epochs, args.learning_rate, args.batch_size, [callback], args.seed)
    outputs = []
    for kind, frame, plot in zip(("grad_norms", "loss_variation"), callback.frames(),
                                 (plots.plot_gradient_norms, plots.plot_loss_variation)):
        outputs += write_outputs(args.out_dir, f"gradients_{args.init}_{kind}", frame,
                                 plot(frame))
    return outputs


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
