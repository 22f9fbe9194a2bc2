"""Annealed Gaussian gradient noise (Neelakantan et al. 2015)."""

import tensorflow as tf

from keras_rank.core.errors import ConfigError


class GradientNoise:
    """Adds N(0, eta / (1 + t)^gamma) noise to every gradient at step t.

    A `keras_rank.training.GradientTransform`. The noise is drawn with
    stateless random ops seeded by (seed, t, variable index), so a resumed run
    draws exactly the noise an uninterrupted one would have drawn. Under a
    distribution strategy the noise is divided by the replica count, since the
    replicas' gradients are summed.

    Args:
        eta: Variance at step 0, > 0 (the paper tries 0.01, 0.3 and 1.0).
        gamma: Decay exponent of the variance (0.55 in the paper).
        seed: Seed of the noise.
    """

    def __init__(self, eta: float, gamma: float = 0.55, seed: int = 0):
        if not eta > 0:
            raise ConfigError(f"Expected gradient noise eta > 0. Received: eta={eta}")
        if gamma < 0:
            raise ConfigError(f"Expected gamma >= 0. Received: gamma={gamma}")
        self.eta = eta
        self.gamma = gamma
        self.seed = seed

    def stddev(self, step: tf.Tensor) -> tf.Tensor:
        """Returns the noise standard deviation at optimizer step `step`."""
        t = tf.cast(step, tf.float32)
        return tf.sqrt(self.eta / tf.pow(1.0 + t, self.gamma))

    def __call__(self, grads, variables, step):
        """Returns the gradients plus noise."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        scale = self.stddev(step) / replicas
        base = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(step, tf.int64)])
        noisy = []
        for index, grad in enumerate(grads):
            seed = tf.random.experimental.stateless_fold_in(base, index)
            noise = tf.random.stateless_normal(tf.shape(grad), seed=seed)
            noisy.append(grad + scale * tf.cast(noise, grad.dtype))
        return noisy
