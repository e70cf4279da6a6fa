"""Log-scale boxplots of a Fisher file per layer (Li et al. 2018, Figure 5), PNG plus CSV summary.

    python tools/plot_fisher.py --fisher fisher.npz --out_dir outputs/fisher [--all]
"""
import argparse

from absl import logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fisher", required=True, help=".npz written by compute_fisher.py")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--all", action="store_true",
                        help="every variable, not only kernels")
    args = parser.parse_args(argv)
    # TensorFlow (through tftransfer) only now: --help and usage errors are instant
    from tftransfer import fisher
    from tftransfer.analysis import fisher_stats, plots
    from tftransfer.analysis.cli import write_outputs
    values = fisher.load(args.fisher)
    paths = list(values) if args.all else None
    summary = fisher_stats.fisher_summary(values, paths)
    outputs = write_outputs(args.out_dir, "fisher_boxplots", summary,
                            plots.plot_fisher(values, list(summary["path"])))
    return outputs


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    main()
