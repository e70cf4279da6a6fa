"""Model selection shared by the demo and the CPU study: choose on validation accuracy only.

Hyper-parameters are never chosen on test data: every record passed here must have been
evaluated on the validation split carved from the target training images. The best
validation accuracy wins; ties go to the smaller value (the weaker penalty).
"""


def choose(records, key="alpha"):
    """The ``key`` flag of the record with the best validation accuracy (ties: the smaller
    value).

    Args:
      records: driver results records (``tftransfer.training.run.run``'s return value),
        each with ``accuracy``, ``eval_split`` and ``flags``.
      key: the flag being chosen.

    Raises:
      ValueError: a record was evaluated on anything but the validation split, or there is
        no record.
    """
    if not records:
        raise ValueError("model selection got no records.")
    for record in records:
        if record["eval_split"] != "validation":
            raise ValueError(f"model selection got a record evaluated on {record['eval_split']!r} "
                             f"({record['output_dir']}); only validation accuracies may "
                             "choose hyper-parameters.")
    best = max(records, key=lambda r: (r["accuracy"], -r["flags"][key]))
    return best["flags"][key]
