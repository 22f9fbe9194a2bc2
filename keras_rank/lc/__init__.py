"""LC rank selection (Idelbayev & Carreira-Perpinan 2020).

Modules: `c_step` (the C step: SVD, exact rank by enumeration, the L-step
penalty, multipliers and the mu schedule), `baselines` (the two rank
heuristics of section 4.1). The C step itself is
`keras_rank.lc.c_step.c_step`: it is not re-exported here, where its name
would hide the `c_step` module.
"""

from keras_rank.lc.baselines import (
    EnergyThreshold,
    energy_ranks,
    energy_threshold_for_budget,
    greedy_ranks_under_budget,
)
from keras_rank.lc.c_step import (
    CStepResult,
    RankSelection,
    SVDError,
    check_lc_hyperparameters,
    check_rank_cost,
    collapse_mu,
    mu_schedule,
    multiplier_update,
    penalty,
    rank_cost,
    robust_svd,
    select_rank,
    stays_dense,
    truncation_errors,
)

__all__ = [
    "CStepResult",
    "EnergyThreshold",
    "RankSelection",
    "SVDError",
    "check_lc_hyperparameters",
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
