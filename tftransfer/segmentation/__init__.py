"""Semantic segmentation with L2-SP (Li et al. 2018, Section 4.2), begun: :mod:`.metrics`
(mIoU with the ignore label), :mod:`.schedules` (the poly learning rate) and
:mod:`.inference` (whole image, sliding window, multi-scale + flip). The models, the
Cityscapes and SBD builders and the driver task are still to come (issue 18)."""
