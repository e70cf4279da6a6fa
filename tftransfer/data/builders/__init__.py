"""tfds builders that store images resized as uint8: caltech256, mit_indoor67,
stanford_dogs120, class_folders, and tfds_source (food101 / imagenet2012 / places365_small).

Importing this package registers them with tfds: ``tfds.builder("caltech256", ...)``.
"""
from tftransfer.data.builders import (caltech256, class_folders, mit_indoor67,  # noqa: F401
                                      stanford_dogs120, tfds_source)
from tftransfer.data.builders import cityscapes, sbd, segmentation_folders  # noqa: F401
