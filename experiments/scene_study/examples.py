"""The predicted masks shown in the report's figure: a few test scenes of each target and
the masks predicted by each method's seed-1 run (:func:`predict`, in a worker), stored in
one compressed ``.npz`` (:func:`save`, :func:`load`) from which the figure is drawn.

File layout: ``targets`` and ``methods`` (string arrays); per target ``t``:
``t/images`` uint8 ``[n, H, W]``, ``t/truth`` uint8 ``[n, H, W]``, ``t/class_names`` and
``t/pred/<method>`` uint8 ``[n, H, W]``.
"""
import io
import os

import numpy as np

from tftransfer.io_utils import atomic_path


def save(path, examples, methods):
    """Writes ``examples`` (``{target: {"images", "truth", "predictions": {method: masks},
    "class_names"}}``) to ``path``."""
    arrays = {"targets": np.asarray(list(examples)), "methods": np.asarray(list(methods))}
    for target, e in examples.items():
        arrays[f"{target}/images"] = np.asarray(e["images"], np.uint8)
        arrays[f"{target}/truth"] = np.asarray(e["truth"], np.uint8)
        arrays[f"{target}/class_names"] = np.asarray(list(e["class_names"]))
        for method in methods:
            arrays[f"{target}/pred/{method}"] = np.asarray(e["predictions"][method], np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(buffer.getvalue())
    return path


def load(path):
    """``(examples, methods)`` as given to :func:`save`."""
    with np.load(path) as data:
        methods = [str(m) for m in data["methods"]]
        examples = {}
        for target in (str(t) for t in data["targets"]):
            examples[target] = {
                "images": data[f"{target}/images"], "truth": data[f"{target}/truth"],
                "class_names": [str(n) for n in data[f"{target}/class_names"]],
                "predictions": {m: data[f"{target}/pred/{m}"] for m in methods}}
    return examples, methods


def predict(runs, count):
    """``{"images", "truth", "predictions": {method: masks}}`` of the first ``count``
    evaluated scenes of ``runs`` (``{method: StudyRun}`` of finished runs that saved their
    weights, all on the same scenes): each network rebuilt from its configuration
    (:func:`tftransfer.training.segmentation_model.build`), its trained weights loaded, the
    scenes preprocessed as in the driver, the predicted class the argmax of the logits."""
    from tftransfer.models import preprocessing as model_preprocessing
    from tftransfer.training import segmentation_data, segmentation_model

    out, reference = {"predictions": {}}, None
    for method, run in runs.items():
        config = run.config
        _, (scenes, truth), _, names = segmentation_data.scene_arrays(config)
        scenes, truth = scenes[:count], truth[:count]
        if reference is None:
            reference = truth
            out.update(images=scenes[..., 0], truth=truth)
        elif not np.array_equal(reference, truth):
            raise ValueError(f"{method}: its evaluated scenes differ from the other methods'; "
                             "the figure compares methods on the same scenes.")
        crop = config.data.crop_size
        network = segmentation_model.build(config, len(names), (crop, crop, scenes.shape[-1]))
        network.model.load_weights(os.path.join(config.runtime.output_dir,
                                                "model.weights.h5"))
        x = model_preprocessing.preprocess(np.asarray(scenes, np.float32),
                                           network.preprocessing, None)
        logits = np.asarray(network.model(x, training=False))
        out["predictions"][method] = np.argmax(logits, axis=-1).astype(np.uint8)
    return out
