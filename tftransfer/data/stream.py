"""The stateless training stream: which example, and which augmentation, at each position.

A stream over ``n`` examples with ``seed`` is the sequence of epochs ``e = 0, 1, ...``,
epoch ``e`` visiting the indices ``stateless_shuffle(range(n), [seed, e])``; the element at
stream position ``p`` (counted from 0 over all epochs) is the pair ``(p, index)``, and the
example there is augmented with the seed ``[seed, p]`` (:func:`augment`). Nothing random
lives in the pipeline, so the stream is a pure function of ``(n, seed)`` and can start
anywhere: :func:`positions` at batch ``k`` (position ``s = k B``) begins with epoch
``s // n``, drops the first ``s mod n`` indices of that epoch's permutation (int64 indices,
before any image is read), and counts positions from ``s``. Its batches are bitwise
batches ``k, k + 1, ...`` of the stream started at 0, for any ``k`` at the same cost: a
resumed run starts in O(1) of the consumed input instead of replaying it.
"""
import tensorflow as tf

from tftransfer.data import preprocessing

ENDLESS = 2 ** 62  # epochs: the stream never ends in practice


def positions(n, seed, batch_size, start_batch=0):
    """``(position int64, index int64)`` elements of the stream of ``n`` examples from batch
    ``start_batch`` of ``batch_size`` (module docstring); ``start_batch=0``: from the
    start."""
    if n <= 0:
        raise ValueError(f"The training stream needs examples; got n={n}.")
    if start_batch < 0:
        raise ValueError(f"start_batch={start_batch} is negative: give the number of "
                         "batches already consumed (0: from the start).")
    start = int(start_batch) * int(batch_size)
    first_epoch, offset = divmod(start, n)

    def epoch(e):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), e]))
        skipped = tf.where(tf.equal(e, first_epoch), tf.constant(offset, tf.int64),
                           tf.constant(0, tf.int64))
        return tf.data.Dataset.from_tensor_slices(order[skipped:])

    return tf.data.Dataset.range(first_epoch, ENDLESS).flat_map(epoch).enumerate(start)


def example_seed(seed, position):
    """The seed ``[seed, position]`` (int64 [2]) of the example at stream position ``position``."""
    return tf.stack([tf.constant(seed, tf.int64), position])


def augment(image, position, seed, crop, mean, jitter=True, mirror=True,
            ranges=preprocessing.JitterRanges()):
    """The example at stream position ``position``, augmented: uint8 ``[H, W, 3]`` ->
    float32 ``[crop, crop, 3]``, :func:`tftransfer.data.preprocessing.train_transform`
    with the seed ``[seed, position]`` (random crop, mirror, colour jitter, ``mean``
    subtracted). Run it per example in a parallel map, then batch."""
    return preprocessing.train_transform(image, example_seed(seed, position), mean, crop,
                                         ranges, jitter, mirror)
