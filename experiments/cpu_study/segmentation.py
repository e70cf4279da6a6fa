"""The segmentation part of the study: the scene study (:mod:`experiments.scene_study`,
Fashion-MNIST scenes, the small ResNet's source network with a new FCN head; none, L2 and
L2-SP, the methods of the library that apply to segmentation) run as part
``segmentation``, its ``segmentation_*`` tables and page written to the part's directory
(``<report_dir>/parts/segmentation/``), its source network the classification study's
(same root: trained once for both)."""
import dataclasses
import os

from experiments.scene_study import protocol as scene_protocol

NAME = "segmentation"
Config = scene_protocol.Settings
QUICK = scene_protocol.QUICK
TABLES = ()  # the scene study writes its own segmentation_* tables
CUT = ("the scene study's cuts: 64x64 scenes, 200 steps, 3 seeds, alpha on a 3-value grid "
       "chosen on one validation split (not cross-validation), beta fixed")


def run(study, config):
    """Runs the scene study under ``study.root``/scene_study with ``study``'s data and
    workers, then draws its page (``segmentation.md``) in the part directory."""
    from experiments.scene_study import report, study as scene_study

    config = dataclasses.replace(config, workers=study.s.workers)
    scene_study.Study(config, os.path.join(study.root, "scene_study"), study.root,
                      study.data_dir, study.part_dir, study.command).run()
    report.write_report(study.part_dir)
