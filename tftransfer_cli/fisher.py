"""Computes the diagonal Fisher of a source model on source inputs and saves it (.npz).

The file maps Keras ``variable.path`` to arrays, ready for
``tftransfer.penalize(model, "l2_sp_fisher", ..., fisher=tftransfer.fisher.load(path))``.

    tftransfer fisher --model source.keras --data source.npz \
        --out fisher.npz [--mode exact|sampled] [--num_samples 1] [--max_examples 2000]

``--data`` is an .npz with the inputs as ``x`` (labels are not used: the Fisher takes its
expectation over the model's own predictions). Also ``python -m tftransfer_cli.fisher`` (or
``python tools/compute_fisher.py`` in a checkout).
"""
import argparse
import time

from absl import logging

from tftransfer_cli.common import require_choice


def build_parser():
    parser = argparse.ArgumentParser(prog="tftransfer fisher",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help=".keras file of the source model")
    parser.add_argument("--data", required=True, help=".npz with source inputs as 'x'")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument("--mode", default="exact",
                        help="exact (every class, weighted by the model's probabilities) or "
                             "sampled (labels drawn from them)")
    parser.add_argument("--num_samples", type=int, default=1,
                        help="labels drawn per example in sampled mode")
    parser.add_argument("--max_examples", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--epsilon", type=float, default=0.0)
    parser.add_argument("--clip", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from tftransfer import fisher
    from tftransfer.analysis.cli import load_arrays, load_model
    require_choice(parser, "--mode", args.mode, fisher.MODES)
    model = load_model(args.model)
    x, _ = load_arrays(args.data)
    examples = len(x) if args.max_examples is None else min(len(x), args.max_examples)
    logging.info(f"Fisher ({args.mode}) of {args.model} on {examples} examples of {args.data}")
    start = time.time()
    values = fisher.diagonal(model, x, mode=args.mode, num_samples=args.num_samples,
                             max_examples=examples, batch_size=args.batch_size,
                             epsilon=args.epsilon, clip=args.clip, seed=args.seed,
                             progress=True)
    metadata = {"model": args.model, "data": args.data, "mode": args.mode,
                "num_samples": args.num_samples, "examples": examples,
                "epsilon": args.epsilon, "clip": args.clip, "seed": args.seed}
    fisher.save(args.out, values, metadata)
    logging.info(f"wrote {len(values)} variables to {args.out} in {time.time() - start:.1f}s")
    return args.out


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
