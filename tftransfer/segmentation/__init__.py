"""Semantic segmentation with L2-SP (Li et al. 2018, Section 4.2): metrics and schedules so
far; models, data and the driver task are issue 18's remaining work."""
