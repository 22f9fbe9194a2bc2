"""Compression-aware training (Alvarez & Salzmann 2017): nuclear-norm proximal steps.

* `operators`: the pure maths: singular-value soft-thresholding (the
  nuclear-norm prox), the closed-form sparse group Lasso prox, their
  composition (section 3.1), and the layer matrix of a Dense/Conv2D kernel.
* `decompose`: post-processing (section 3.2): remove units that went to zero,
  split every layer at an energy threshold into LC's low-rank layers.
* `ProxConfig`, `Prox` (the engine callback) and `train_prox` (one run and
  its decompositions into a work directory); `ProxFitCallback`, the same
  proximal steps in the user's own `Model.fit`.
"""

from keras_rank.prox.callback import Prox, ProxFitCallback
from keras_rank.prox.config import ProxConfig
from keras_rank.prox.run import train_prox

__all__ = ["Prox", "ProxConfig", "ProxFitCallback", "train_prox"]
