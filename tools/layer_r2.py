"""Layer-wise R^2 of fine-tuned vs pretrained activations (Li et al. 2018, Figure 4), PNG plus CSV.

    python tools/layer_r2.py --pretrained source.keras \
        --finetuned L2=ft_l2.keras --finetuned L2-SP=ft_l2sp.keras \
        --data target_test.npz --out_dir outputs/r2 [--layers stem_relu,stage1_block1_out]
"""
import argparse

from absl import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrained", required=True, help=".keras starting point")
    parser.add_argument("--finetuned", action="append", required=True,
                        help="NAME=model.keras, repeatable")
    parser.add_argument("--data", required=True, help=".npz with inputs 'x'")
    parser.add_argument("--layers", default=None, help="comma-separated layer names")
    parser.add_argument("--max_examples", type=int, default=1000)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--out_dir", required=True)
    args = parser.parse_args(argv)
    # TensorFlow (through tftransfer) only now: --help and usage errors are instant
    from tftransfer.analysis import plots, r2
    from tftransfer.analysis.cli import load_arrays, load_model, parse_named, write_outputs
    pretrained = load_model(args.pretrained)
    x, _ = load_arrays(args.data)
    x = x[:args.max_examples]
    layers = args.layers.split(",") if args.layers else None
    results = {}
    for name, path in parse_named(args.finetuned).items():
        logging.info(f"R^2 of {name} ({path}) on {len(x)} examples")
        results[name] = r2.layer_r2(pretrained, load_model(path), x, layers, args.batch_size)
    frame = r2.r2_frame(results)
    outputs = write_outputs(args.out_dir, "layer_r2", frame, plots.plot_r2(frame))
    return outputs


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
