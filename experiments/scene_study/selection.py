"""Alpha chosen on validation scenes only: the highest validation mIoU, ties to the smaller
alpha (the weaker penalty), as the classification study's rule
(:func:`tftransfer.training.selection.choose`) but on mean IoU, which cannot be pooled from
an accuracy and a count. A record evaluated on anything but the validation split is refused
(:func:`tftransfer.training.selection.check_validation`), so the test scenes never choose.
"""
import math

from tftransfer.training.selection import check_validation

SCORE = "mean_iou"


def choose(records, key="alpha", score=SCORE):
    """The ``key`` flag of the record with the highest ``score`` among ``records`` (driver
    results records of validation runs); ties go to the smaller value."""
    check_validation(records)
    for record in records:
        value = record.get(score)
        if value is None or not math.isfinite(value):
            raise ValueError(f"{record.get('output_dir')}: no finite {score!r} in the record "
                             f"to choose {key} on (got {value!r}); is it a segmentation run?")
    best = min(records, key=lambda r: (-r[score], r["flags"][key]))
    return best["flags"][key]
