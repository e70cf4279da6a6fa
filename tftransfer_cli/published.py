"""The published numbers of Li, Grandvalet & Davoine 2018, "Explicit Inductive Bias for
Transfer Learning with Convolutional Networks": the one place they are typed in, shared by
:mod:`tftransfer_cli.tables` and the CPU study's report.

- :data:`TABLE2`: Table 2, target test accuracy (%), mean and std over 5 runs, per method,
  target and evaluation (``starred``: the paper's starred rows, averaged over 10 test
  crops).
- :data:`TABLE5`: Table 5, drop of source-task (ImageNet) accuracy in points after
  fine-tuning, per target and method.
- :data:`TABLE4`: Table 4 (Cityscapes validation mIoU, %) and the SBD result of Section
  4.2.3 (Pascal VOC 2012 validation mIoU, %), one run per cell, L2 and L2-SP.
- :data:`PAPER_FINDINGS`: numbers the paper states in its text and figures.
"""
import pandas as pd

TARGETS = {"caltech256_30": "Caltech-30", "caltech256_60": "Caltech-60",
           "mit_indoor67": "Indoors", "stanford_dogs120": "Dogs", "food101": "Foods"}
METHODS = {"l2": "L2", "l2_sp": "L2-SP", "l2_sp_fisher": "L2-SP-Fisher"}

_TABLE2 = {  # (method, starred): [(mean, std)] in the order of TARGETS
    ("l2", False): [(81.5, 0.2), (85.3, 0.2), (79.6, 0.5), (66.3, 0.2), (84.6, 0.1)],
    ("l2_sp", False): [(83.5, 0.1), (86.4, 0.2), (84.2, 0.3), (74.9, 0.2), (85.4, 0.3)],
    ("l2_sp_fisher", False): [(83.3, 0.1), (86.0, 0.1), (84.0, 0.4), (74.4, 0.1), (85.1, 0.1)],
    ("l2", True): [(82.7, 0.2), (86.5, 0.4), (80.7, 0.9), (67.7, 0.3), (86.7, 0.2)],
    ("l2_sp", True): [(84.9, 0.1), (87.9, 0.2), (85.2, 0.3), (77.1, 0.2), (87.1, 0.1)],
    ("l2_sp_fisher", True): [(84.8, 0.1), (87.9, 0.1), (85.2, 0.1), (76.9, 0.1), (87.0, 0.1)],
}
_TABLE5 = {  # target: drop of L2, L2-SP, L2-SP-Fisher (points)
    "mit_indoor67": (24.1, 5.3, 4.9), "caltech256_30": (15.4, 4.2, 3.6),
    "caltech256_60": (16.9, 3.6, 3.2), "stanford_dogs120": (14.1, 4.7, 4.2),
    "food101": (68.6, 64.5, 53.2)}

TABLE2 = pd.DataFrame(
    [{"method": m, "starred": starred, "target": target, "mean": mean, "std": std, "runs": 5,
      "source": "Li et al. 2018, Table 2"}
     for (m, starred), cells in _TABLE2.items()
     for target, (mean, std) in zip(TARGETS, cells)])
TABLE5 = pd.DataFrame(
    [{"method": m, "target": target, "drop": drop, "source": "Li et al. 2018, Table 5"}
     for target, drops in _TABLE5.items() for m, drop in zip(METHODS, drops)])
# Table 4 rows: (dataset, network) -> (L2, L2-SP) mIoU %. "deeplab_coco": ImageNet then
# Microsoft COCO pretraining; "pspnet_extra": the 20000 coarsely labelled Cityscapes images
# added to the training set. SBD: PSPNet, 480x480 crops, batch 16 (Section 4.2.3).
SEGMENTATION_NETWORKS = {"fcn": "FCN", "resnet": "ResNet-101", "deeplab": "DeepLab",
                         "deeplab_coco": "DeepLab-COCO", "pspnet": "PSPNet",
                         "pspnet_extra": "PSPNet-extra"}
SEGMENTATION_TARGETS = {"cityscapes": "Cityscapes val", "sbd": "SBD (VOC 2012 val)"}
_TABLE4 = {("cityscapes", "fcn"): (66.9, 67.9), ("cityscapes", "resnet"): (68.1, 68.7),
           ("cityscapes", "deeplab"): (68.6, 70.4), ("cityscapes", "deeplab_coco"): (72.0, 73.2),
           ("cityscapes", "pspnet"): (78.2, 79.4), ("cityscapes", "pspnet_extra"): (80.9, 81.2),
           ("sbd", "pspnet"): (78.3, 79.9)}
TABLE4 = pd.DataFrame(
    [{"dataset": dataset, "network": network, "method": m, "miou": miou, "runs": 1,
      "source": "Li et al. 2018, Table 4" if dataset == "cityscapes"
      else "Li et al. 2018, Section 4.2.3"}
     for (dataset, network), cells in _TABLE4.items()
     for m, miou in zip(("l2", "l2_sp"), cells)])
PAPER_FINDINGS = {
    "iterations": 9000,  # fine-tuning length of the main experiments (Li et al. 2018, Section 4)
    "best_beta": 0.01,  # the head's L2 strength found best for every target (Li et al. 2018, Figure 1)
}


def table2(method, target, starred=False):
    """``(mean, std)`` of Table 2, or None when the paper has no such cell."""
    row = TABLE2[(TABLE2.method == method) & (TABLE2.target == target)
                 & (TABLE2.starred == starred)]
    return None if row.empty else (float(row["mean"].iloc[0]), float(row["std"].iloc[0]))


def table5(method, target):
    """The source-accuracy drop of Table 5 (points), or None when the paper has no such cell."""
    row = TABLE5[(TABLE5.method == method) & (TABLE5.target == target)]
    return None if row.empty else float(row["drop"].iloc[0])


def table5_example(target="stanford_dogs120"):
    """'<L2 drop> vs <L2-SP drop> points on <target>': Table 5's L2 and L2-SP drops on ``target``."""
    return (f"{table5('l2', target):g} vs {table5('l2_sp', target):g} points on "
            f"{TARGETS[target]}")


def table4(method, dataset, network):
    """The mIoU (%) of Table 4 (or the SBD result), or None when the paper has no such cell."""
    row = TABLE4[(TABLE4.method == method) & (TABLE4.dataset == dataset)
                 & (TABLE4.network == network)]
    return None if row.empty else float(row["miou"].iloc[0])
