"""The project's one figure style (tftransfer.analysis.style) and every figure kind drawn on
tiny synthetic tables: a method keeps one colour across figure kinds, axes are labelled,
titles never start with ': ', k ticks are integers, legends stay off the data, medians
contrast with their boxes, and a constant grid is refused instead of drawn."""
import itertools
import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402

from tftransfer import methods as methods_lib  # noqa: E402
from tftransfer.analysis import plots, style  # noqa: E402
from tftransfer.analysis.cli import write_png  # noqa: E402
from tftransfer.penalty import SCHEMES  # noqa: E402
from experiments.cpu_study.report import common, figure1, figures, landscape  # noqa: E402
from experiments.scene_study import figure as scene_figure  # noqa: E402

METHODS = ("scratch", "none", "l2", "l2_sp", "l2_sp_fisher", "linear_probe", "bss", "wise_ft")
SPLITS = ("far", "near")


def _runs(seed=0):
    """Fake final runs: 3 seeds per (split, method), accuracies 0.6-0.9."""
    rng = np.random.default_rng(seed)
    rows = [dict(split=x, method=m, seed=s, test_accuracy=rng.uniform(0.6, 0.9))
            for x in SPLITS for m in METHODS for s in range(3)]
    return pd.DataFrame(rows)


def _curves():
    """Fake deviation curves: method x step, panels per split."""
    rows = [dict(panel=f"{x} split", method=m, step=step, distance=0.001 * (i + 1) * step)
            for x in SPLITS for i, m in enumerate(METHODS) for step in (10, 20, 30)]
    return pd.DataFrame(rows)


def _drawn(fig):
    """``fig`` laid out and drawn on an Agg canvas (window extents are then valid)."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig


def _data_axes(fig):
    """The axes holding data (colour bars left out)."""
    return [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is None]


def _overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


class StyleTest(tf.test.TestCase):

    def test_every_known_method_has_its_own_colour_and_label(self):
        names = style.methods()
        for name in tuple(SCHEMES) + tuple(methods_lib.names()) + style.BASELINES:
            self.assertIn(name, names)
            self.assertIn(name, style.COLOURS, f"{name} has no fixed colour")
            self.assertIn(name, style.LABELS, f"{name} has no label")
        colours = [mcolors.to_hex(style.colour(m)) for m in names]
        self.assertLen(set(colours), len(names))
        # Distinct enough to tell apart: no two closer than 0.1 in RGB (unit cube).
        rgb = np.array([mcolors.to_rgb(c) for c in colours])
        gaps = [np.linalg.norm(rgb[i] - rgb[j])
                for i, j in itertools.combinations(range(len(rgb)), 2)]
        self.assertGreater(min(gaps), 0.1)
        self.assertLen({(style.colour(m), style.marker(m), style.linestyle(m))
                        for m in names}, len(names))

    def test_unknown_names_and_frozen_variants(self):
        self.assertEqual(style.colour("my_model"), style.colour("my_model"))
        self.assertIn(style.colour("my_model"), style.SPARE)
        self.assertEqual(style.linestyle("my_model"), ":")
        self.assertEqual(style.label("my_model"), "my_model")
        self.assertEqual(style.colour("freeze2_l2_sp"), style.colour("l2_sp"))
        self.assertEqual(style.label("freeze2_l2_sp"), "L2-SP, first 2 units frozen")
        self.assertIs(common.label, style.label)  # one place for the labels

    def test_contrast_and_constant(self):
        self.assertEqual(style.contrast("#000000"), "#FFFFFF")
        self.assertEqual(style.contrast("#F0E442"), "#000000")
        self.assertTrue(style.is_constant([1.0, 1.0, np.nan]))
        self.assertFalse(style.is_constant([1.0, 0.9]))
        self.assertEqual(style.title("", "far"), "far")
        self.assertEqual(style.title("a", None), "a")


class FigureKindsTest(tf.test.TestCase):

    def _write(self, fig, name):
        path = os.path.join(self.get_temp_dir(), name)
        write_png(fig, path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        _drawn(fig)
        axes = _data_axes(fig)
        for ax in axes:
            self.assertTrue(ax.get_xlabel().strip(), (name, "empty x label"))
            self.assertFalse(ax.get_title().startswith(":"), (name, ax.get_title()))
        self.assertTrue(axes[0].get_ylabel().strip(), (name, "empty y label"))
        for legend in fig.legends + [ax.get_legend() for ax in axes if ax.get_legend()]:
            box = legend.get_window_extent()
            for ax in axes:
                self.assertFalse(_overlaps(box, ax.get_window_extent()),
                                 f"{name}: the legend covers the axes of {ax.get_title()!r}")
        return fig

    def test_bars_colour_each_method_as_the_lines_do(self):
        fig = self._write(figures.bars(_runs(), list(SPLITS), list(METHODS)), "bars.png")
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_yticklabels()]
        by_label = {}
        for patch in ax.patches:
            y = patch.get_y() + patch.get_height() / 2
            tick = int(np.argmin([abs(y - t) for t in ax.get_yticks()]))
            by_label[labels[tick]] = mcolors.to_hex(patch.get_facecolor())
        lines = self._write(figures.lines(_curves(), "step", "distance", "method", "d",
                                          "iteration", "distance",
                                          panels=[f"{x} split" for x in SPLITS]), "lines.png")
        legend = lines.legends[0]
        line_colour = {t.get_text(): mcolors.to_hex(h.get_color()) for t, h in
                       zip(legend.get_texts(), legend.legend_handles)}
        for m in METHODS:
            self.assertEqual(by_label[style.label(m)], mcolors.to_hex(style.colour(m)), m)
            self.assertEqual(line_colour[style.label(m)], mcolors.to_hex(style.colour(m)), m)
        # The legend follows the style's method order, whatever the table's order.
        self.assertEqual([t.get_text() for t in legend.get_texts()],
                         [style.label(m) for m in sorted(METHODS, key=style.order)])

    def test_freeze_figure_has_integer_k_ticks_and_both_lines_visible(self):
        frame = pd.DataFrame([dict(method=m, k=k, acc=90.0 + k, acc_std=0.1)
                              for m in ("l2", "l2_sp") for k in range(4)])
        fig = self._write(figures.lines(frame, "k", "acc", "method", "first k units frozen",
                                        "k", "test accuracy (%)", integer_x=True,
                                        dodge=0.06), "freeze.png")
        ax = fig.axes[0]
        self.assertAllEqual(ax.get_xticks(), [0, 1, 2, 3])
        self.assertEqual([t.get_text() for t in ax.get_xticklabels()], ["0", "1", "2", "3"])
        xs = sorted({tuple(np.round(np.asarray(line.get_xdata(), float), 6))
                     for line in ax.get_lines() if len(line.get_xdata()) == 4})
        self.assertLen(xs, 2)  # the two lines (and their caps) at two dodged positions
        self.assertGreater(np.min(np.abs(np.subtract(xs[0], xs[1]))), 0.05)

    def test_log_axis_ticks_at_the_data_do_not_collide(self):
        frame = pd.DataFrame([dict(panel=p, method=m, steps=n, value=n / 1000 + j)
                              for p in ("accuracy (%)", "RMS distance from w0")
                              for j, m in enumerate(("none", "l2_sp"))
                              for n in (300, 1000, 2000)])
        fig = self._write(figures.lines(frame, "steps", "value", "method", "", "iterations",
                                        {"accuracy (%)": "test accuracy (%)",
                                         "RMS distance from w0": "RMS distance"},
                                        logx=True, panels=["accuracy (%)",
                                                           "RMS distance from w0"],
                                        dodge=0.012), "length.png")
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            self.assertEqual(ax.get_title(), ax.get_title().lstrip(": "))
            self.assertTrue(ax.get_title())
            texts = [t for t in ax.get_xticklabels() if t.get_text()]
            self.assertEqual([t.get_text() for t in texts], ["300", "1000", "2000"])
            boxes = [t.get_window_extent(renderer) for t in texts]
            for a, b in itertools.combinations(boxes, 2):
                self.assertFalse(_overlaps(a, b))

    def test_heatmap_refuses_a_constant_grid_and_the_section_says_it(self):
        cells = pd.DataFrame([dict(alpha=a, beta=b, val_accuracy=1.0, val_cross_entropy=0.1)
                              for a in (0.01, 0.1) for b in (0.001, 0.01)])
        with self.assertRaisesRegex(ValueError, "same validation accuracy"):
            figures.heatmap(cells)
        with self.assertRaisesRegex(ValueError, "same validation cross-entropy"):
            figures.heatmap(cells, "val_cross_entropy")
        cv = cells.assign(experiment="figure1", arm="small_resnet", split="far",
                          method="l2_sp", examples_per_class=20, steps=300, num_val=100)
        t = {"cv": cv, "study": {"settings": dict(figure1_split="far", main_examples=20,
                                                  main_steps=300, folds=5)}}
        lines, figs = figure1.section(t)
        self.assertEqual(figs, {figure1.FIGURE: None})
        self.assertIn("no heatmap is drawn", "\n".join(lines))
        self.assertNotIn("![figure 1]", "\n".join(lines))
        # Accuracy tied, cross-entropy not: the heatmap shows the cross-entropy.
        by_loss = cv.assign(val_cross_entropy=[0.1, 0.2, 0.3, 0.4])
        lines, figs = figure1.section(dict(t, cv=by_loss))
        self.assertIn("![figure 1]", "\n".join(lines))
        self.assertIn("cross-entropy", figs[figure1.FIGURE].axes[0].get_title())
        varied = cv.assign(val_accuracy=[0.9, 0.8, 0.7, 0.9])
        lines, figs = figure1.section(dict(t, cv=varied))
        self.assertIn("![figure 1]", "\n".join(lines))
        self.assertIn("accuracy", figs[figure1.FIGURE].axes[0].get_title())
        self._write(figs[figure1.FIGURE], "figure1.png")

    def test_boxes_have_medians_that_contrast_with_their_face(self):
        rng = np.random.default_rng(0)
        r2 = pd.DataFrame([dict(model=m, layer=l, unit=u, r2=rng.uniform())
                           for m in ("none", "l2", "l2_sp") for l in ("a", "b") for u in range(8)])
        fisher = pd.DataFrame([dict(split=x, path=p, q05=1e-4, q25=1e-3, q50=1e-2, q75=1e-1,
                                    q95=1.0) for x in SPLITS for p in ("c1/kernel", "c2/kernel")])
        for fig, name in ((plots.plot_r2(r2), "r2.png"),
                          (figures.fisher_boxes(fisher), "fisher.png")):
            self._write(fig, name)
            ax = fig.axes[0]
            patches = [p for p in ax.patches]
            medians = [line for line in ax.get_lines() if len(line.get_xdata()) == 2
                       and line.get_ydata()[0] == line.get_ydata()[1]
                       and line.get_linewidth() == 2.0]
            self.assertLen(medians, len(patches))
            for patch, median in zip(patches, medians):
                face = mcolors.to_hex(patch.get_facecolor())
                self.assertEqual(mcolors.to_hex(median.get_color()),
                                 mcolors.to_hex(style.contrast(face)))
                self.assertNotEqual(mcolors.to_hex(median.get_color()), face)
        self.assertEqual(mcolors.to_hex(fig.axes[0].patches[0].get_facecolor()),
                         mcolors.to_hex(style.split_colour("far")))

    def test_landscape_axes_say_what_t_is(self):
        rows = [dict(method=m, kind=k, t=t, loss=1.0 + t * t + i, split="far")
                for i, m in enumerate(("none", "l2_sp")) for k in landscape.PANELS
                for t in (-1.0, 0.0, 0.5, 1.0)]
        lines, figs = landscape.section({"landscape": pd.DataFrame(rows)})
        fig = self._write(figs["landscape_far.png"], "landscape.png")
        self.assertIn("0 = start w0, 1 = fine-tuned", fig.axes[0].get_xlabel())
        for ax in fig.axes:
            self.assertNotEqual(ax.get_xlabel(), "t")

    def test_analysis_plots_and_scene_masks(self):
        steps = pd.DataFrame([dict(step=s, path=p, deviation=0.01 * s, grad_norm=1.0 + s,
                                   eta=e, loss=1.0 / (s + 1) + e)
                              for s in range(1, 4) for p in ("a/kernel", "b/kernel")
                              for e in (0.1, 0.2)])
        spectrum = pd.DataFrame([dict(checkpoint=c, index=i, normalized=0.5 ** i)
                                 for c in ("epoch1", "epoch2") for i in range(5)])
        transfer = pd.DataFrame(dict(checkpoint=["e1", "e2"], probe_accuracy=[0.5, 0.6],
                                     finetune_accuracy=[0.7, 0.8]))
        slice1 = pd.DataFrame(dict(alpha=[-1.0, 0.0, 1.0], loss=[2.0, 1.0, 2.0]))
        slice2 = pd.DataFrame([dict(alpha=a, beta=b, loss=a * a + b * b)
                               for a in (-1.0, 0.0, 1.0) for b in (-1.0, 0.0, 1.0)])
        drops = pd.DataFrame(dict(method=["l2", "l2_sp"], drop=[5.0, 2.0]))
        weights = pd.DataFrame(dict(x=[0.0, 1.0, 2.0], y=[0.0, 1.0, 0.5], label=list("aab")))
        kinds = {"deviation": plots.plot_deviation(steps),
                 "fisher_tool": plots.plot_fisher({"a": np.array([1e-3, 1e-2, 1.0])}, ["a"]),
                 "drops": plots.plot_drops(drops), "spectrum": plots.plot_spectrum(spectrum),
                 "transfer": plots.plot_transfer(transfer),
                 "weight_map": plots.plot_weight_map(weights),
                 "slice_1d": plots.plot_slice_1d({"l2_sp": slice1, "none": slice1}),
                 "slice_2d": plots.plot_slice_2d(slice2),
                 "gradients": plots.plot_gradient_norms(steps),
                 "loss_variation": plots.plot_loss_variation(steps)}
        for name, fig in kinds.items():
            self._write(fig, name + ".png")
        bars = kinds["drops"].axes[0].patches
        self.assertEqual([mcolors.to_hex(p.get_facecolor()) for p in bars],
                         [mcolors.to_hex(style.colour(m)) for m in ("l2", "l2_sp")])
        rng = np.random.default_rng(0)
        examples = {"seen": {"images": rng.integers(0, 256, (1, 8, 8)),
                             "truth": rng.integers(0, 3, (1, 8, 8)), "class_names": ["a", "b"],
                             "predictions": {"l2_sp": rng.integers(0, 3, (1, 8, 8))}}}
        fig = scene_figure.masks(examples, ["l2_sp"])
        path = os.path.join(self.get_temp_dir(), "masks.png")
        write_png(fig, path)
        self.assertTrue(os.path.exists(path))
        self.assertEqual(fig.axes[2].get_title().splitlines()[0], style.label("l2_sp"))
        self.assertNotIn((0.0, 0.0, 0.0), scene_figure.palette(8)[1:])


if __name__ == "__main__":
    tf.test.main()
