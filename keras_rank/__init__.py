"""keras_rank: Keras layers and trainers that shrink weight rank while training."""

__version__ = "0.1.0"
