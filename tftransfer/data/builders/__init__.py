"""tfds builders that store images resized as uint8: caltech256, mit_indoor67,
stanford_dogs120, class_folders, and tfds_source (food101 / imagenet2012 / places365_small)."""
