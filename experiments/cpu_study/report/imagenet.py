"""Report section on the ImageNet EfficientNet-Lite0 arm."""
from experiments.cpu_study.report.common import chosen_alpha, fmt, label, select, sentence, stats, table


def section(t):
    """``(Markdown lines, {})`` of the ImageNet arm."""
    runs = select(t["runs"], experiment="imagenet")
    if runs.empty:
        return [], {}
    s = t["study"]["settings"]
    methods = [m for m in s["imagenet_methods"] if m in set(runs["method"])]
    st = {m: stats(select(runs, method=m)) for m in methods}
    rows = [[label(m), chosen_alpha(runs, method=m), fmt(st[m])] for m in methods]
    parts = [sentence(label(a), st[a], label(b), st[b])
             for a, b in (("l2_sp", "l2"), ("l2_sp", "none"), ("linear_probe", "none"))
             if a in st and b in st]
    return ["## The paper's kind of source: ImageNet EfficientNet-Lite0", "",
            f"Fashion-MNIST classes 5-9 at {s['imagenet_size']}x{s['imagenet_size']}, "
            f"{s['imagenet_examples']} images per class, {s['imagenet_steps']} iterations, "
            f"test accuracy (%), mean ± std over {int(runs.groupby('method').size().min())} "
            f"seeds; alpha by {s.get('imagenet_folds', s['folds'])}-fold cross-validation. "
            "No Fisher variants (no ImageNet images offline).", "",
            table(["method", "alpha", "test accuracy (%)"], rows), "",
            "- " + "; ".join(parts) + ".", ""], {}
