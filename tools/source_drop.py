"""Source-task accuracy drop with the source head put back (Li et al. 2018, Table 5), PNG plus CSV.

The source head (``--head``, a Dense layer of the pretrained model) scores the features
(``--feature_layer``) of the pretrained model and of each fine-tuned model on source data.

    python tools/source_drop.py --pretrained source.keras \
        --finetuned L2=ft_l2.keras --finetuned L2-SP=ft_l2sp.keras \
        --data source_val.npz --out_dir outputs/source_drop \
        [--feature_layer avg_pool] [--head predictions]
"""
import argparse

import pandas as pd
from absl import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrained", required=True)
    parser.add_argument("--finetuned", action="append", required=True,
                        help="NAME=model.keras, repeatable")
    parser.add_argument("--data", required=True, help=".npz with source 'x' and 'y'")
    parser.add_argument("--feature_layer", default="avg_pool")
    parser.add_argument("--head", default="predictions",
                        help="name of the source classifier layer in --pretrained")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args(argv)
    # TensorFlow (through tftransfer) only now: --help and usage errors are instant
    from tftransfer.analysis import plots, source_task
    from tftransfer.analysis.cli import load_arrays, load_model, parse_named, write_outputs
    pretrained = load_model(args.pretrained)
    head = source_task.source_head(pretrained, args.head)
    x, y = load_arrays(args.data)
    if y is None:
        raise ValueError(f"{args.data!r} has no 'y': source labels are needed.")
    base = source_task.feature_model(pretrained, args.feature_layer)
    rows = []
    for name, path in parse_named(args.finetuned).items():
        tuned = source_task.feature_model(load_model(path), args.feature_layer)
        result = source_task.source_accuracy_drop(base, tuned, head, (x, y), args.batch_size)
        logging.info(f"{name}: source accuracy {result['pretrained']:.2f}% -> "
                     f"{result['finetuned']:.2f}% (drop {result['drop']:.2f})")
        rows.append({"method": name, **result})
    frame = pd.DataFrame(rows)
    outputs = write_outputs(args.out_dir, "source_drop", frame, plots.plot_drops(frame))
    return outputs


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
