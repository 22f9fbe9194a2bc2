"""LC rank selection (Idelbayev & Carreira-Perpinan 2020).

Pure maths: `c_step` (the C step: SVD, exact rank by enumeration, the L-step
penalty, multipliers and the mu schedule), `baselines` (the two rank
heuristics of section 4.1). Keras wiring: `config` (`LCConfig`),
`layer_matrices` (a layer's matrix per conv scheme, its rank costs, the
low-rank net), `callback` (`LC`: C steps between the engine's epochs, and its
penalty loss term), `run` (`train_lc`: reference, LC, fine-tuning and
baselines into a work directory; `baseline_choices`: a baseline's ranks at
a cost budget, for `low_rank_model`). The C step itself is
`keras_rank.lc.c_step.c_step`: it is not re-exported here, where its name
would hide the `c_step` module.
"""

from keras_rank.core.linalg import SVDError, robust_svd, stays_dense
from keras_rank.layers.rank_specs import (
    LayerSpec,
    RankChoice,
    layer_specs,
    low_rank_model,
)
from keras_rank.lc.baselines import (
    EnergyThreshold,
    energy_ranks,
    energy_threshold_for_budget,
    greedy_ranks_under_budget,
)
from keras_rank.lc.c_step import (
    CStepResult,
    RankSelection,
    check_rank_cost,
    collapse_mu,
    mu_schedule,
    multiplier_update,
    penalty,
    rank_cost,
    select_rank,
    truncation_errors,
)
from keras_rank.lc.callback import LC, LCFitCallback, LCPenalty
from keras_rank.lc.config import LCConfig
from keras_rank.lc.run import baseline_choices, train_lc

__all__ = [
    "LCFitCallback",
    "LC",
    "LCConfig",
    "LCPenalty",
    "LayerSpec",
    "RankChoice",
    "layer_specs",
    "low_rank_model",
    "train_lc",
    "baseline_choices",
    "CStepResult",
    "EnergyThreshold",
    "RankSelection",
    "SVDError",
    "check_rank_cost",
    "collapse_mu",
    "energy_ranks",
    "energy_threshold_for_budget",
    "greedy_ranks_under_budget",
    "multiplier_update",
    "mu_schedule",
    "penalty",
    "rank_cost",
    "robust_svd",
    "select_rank",
    "stays_dense",
    "truncation_errors",
]
