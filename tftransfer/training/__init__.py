"""The absl driver's parts: run configuration, data, model, training loop, outputs.

``python -m tftransfer.train --flagfile=flags/<experiment>.cfg`` runs one experiment;
:func:`tftransfer.training.run.run` does the same from Python with a
:class:`tftransfer.training.config.RunConfig` (``config.make(**flags)``) and optionally an
input hook (:class:`tftransfer.training.data.Inputs`).
"""
