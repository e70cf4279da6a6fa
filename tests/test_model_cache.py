"""ModelCache: a reused compiled model starts a run as a fresh build would, dropout's
random seed state included."""
import keras
import numpy as np
import tensorflow as tf

from tftransfer.training import config as config_lib
from tftransfer.training.model import ModelCache, build_compiled, seed_states


def _config(seed):
    return config_lib.make(arch="efficientnet_lite0", source="none", weights=None, scheme="none",
                     alpha=0.0, beta=0.0, dataset="synthetic", resize=32, crop_size=32,
                     batch_size=4, seed=seed, export=False)


class ModelCacheSeedStateTest(tf.test.TestCase):

    def test_reused_model_gets_the_dropout_seed_state_of_a_fresh_build(self):
        strategy, shape = tf.distribute.get_strategy(), (32, 32, 3)
        keras.utils.set_random_seed(1)
        fresh = [v.numpy() for v in seed_states(build_compiled(_config(1), strategy, 4,
                                                               shape).model)]
        self.assertNotEmpty(fresh)

        cache = ModelCache()
        keras.utils.set_random_seed(0)
        model = cache.get(_config(0), strategy, 4, shape).model
        model(np.zeros((2,) + shape, np.float32), training=True)  # dropout draws: state moves
        moved = [v.numpy() for v in seed_states(model)]
        self.assertFalse(all(np.array_equal(a, b) for a, b in zip(moved, fresh)))

        keras.utils.set_random_seed(1)
        reused = cache.get(_config(1), strategy, 4, shape).model
        for state, expected in zip(seed_states(reused), fresh):
            self.assertAllEqual(state.numpy(), expected)
