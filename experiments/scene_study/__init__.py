"""The CPU-scale segmentation study (issue 18, point 5): L2-SP against L2 and plain
fine-tuning on scenes of Fashion-MNIST items (``python -m experiments.scene_study``).

- :mod:`.protocol`: the source network (the classification study's, reused), the scene
  targets, the methods and the driver configuration of every run;
- :mod:`.selection`: alpha chosen on the validation scenes' mIoU only;
- :mod:`.study`: the runs, in order, on the classification study's worker pool, and the
  tables they write (CSV, ``segmentation_study.json``);
- :mod:`.examples`: the predicted masks of a few test scenes for the figure;
- :mod:`.report` and :mod:`.figure`: ``segmentation.md`` and its PNG, from those files only.
"""
