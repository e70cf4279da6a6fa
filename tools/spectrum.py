"""Spectra of penultimate features and linear-probe vs fine-tune accuracy across source
checkpoints (Liu et al. 2019, "Towards Understanding the Transferability of Deep
Representations", Figure 9, and the feature-extraction vs fine-tuning study of pretraining
epochs and feature singular values), PNGs plus CSVs.

    python tools/spectrum.py --checkpoint e1=ckpt_01.keras --checkpoint e5=ckpt_05.keras \
        --train target_train.npz --test target_test.npz --out_dir outputs/spectrum \
        [--feature_layer avg_pool] [--epochs 5] [--no_transfer]

Spectra are computed on the ``--test`` inputs. Save checkpoints during source training with
``keras.callbacks.ModelCheckpoint("ckpt_{epoch:02d}.keras")``.
"""
import argparse

import numpy as np
import pandas as pd
from absl import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", action="append", required=True,
                        help="NAME=source_checkpoint.keras, repeatable, in training order")
    parser.add_argument("--train", required=True, help=".npz target training 'x', 'y'")
    parser.add_argument("--test", required=True, help=".npz target test 'x', 'y'")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--feature_layer", default="avg_pool")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--learning_rate", type=float, default=0.01)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--no_transfer", action="store_true",
                        help="spectra only, skip probe and fine-tune")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # TensorFlow (through tftransfer) only now: --help and usage errors are instant
    from tftransfer.analysis import plots, source_task, spectrum
    from tftransfer.analysis.cli import load_arrays, load_model, parse_named, write_outputs
    train, test = load_arrays(args.train), load_arrays(args.test)
    num_classes = int(max(np.max(train[1]), np.max(test[1]))) + 1
    spectra, rows = {}, []
    for name, path in parse_named(args.checkpoint).items():
        model = load_model(path)
        features = source_task.feature_model(model, args.feature_layer)
        spectra[name] = spectrum.singular_values(
            spectrum.feature_matrix(features, test[0], args.batch_size))
        if not args.no_transfer:
            result = spectrum.probe_and_finetune(
                model, train, test, num_classes, args.feature_layer, args.epochs,
                args.learning_rate, args.learning_rate, args.batch_size, args.seed)
            logging.info(f"{name}: probe {100 * result['probe_accuracy']:.2f}%, fine-tune "
                         f"{100 * result['finetune_accuracy']:.2f}%")
            rows.append({"checkpoint": name, **result})
    frame = spectrum.spectrum_frame(spectra)
    outputs = write_outputs(args.out_dir, "spectrum", frame, plots.plot_spectrum(frame))
    if rows:
        frame = pd.DataFrame(rows)
        outputs += write_outputs(args.out_dir, "transfer", frame, plots.plot_transfer(frame))
    return outputs


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
