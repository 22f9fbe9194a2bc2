"""`LC`: the learning-compression algorithm on the training engine.

The engine's epochs are the L steps: ordinary training of the full-rank net
with the penalty mu/2 ||W - Theta - beta/mu||^2 (`LCPenalty`, a loss term).
Every `epochs_per_l_step` epochs the callback runs a C step (per layer one SVD
of W - beta/mu and the exact rank, `c_step`), updates the multipliers
beta <- beta - mu (W - Theta) and raises mu to mu0 b^j. The first C step runs
before any training, at mu0, on the reference weights.
"""

import json
import math
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rank.core.linalg import SVDError
from keras_rank.layers.latency import LatencyTable
from keras_rank.layers.rank_specs import (
    LayerSpec,
    RankChoice,
    layer_specs,
    low_rank_model,
)
from keras_rank.lc import c_step as c_step_lib
from keras_rank.lc.config import LCConfig
from keras_rank.training.hooks import Callback
from keras_rank.training.keras_fit import FitCallback


class LCPenalty:
    """The L step's penalty: sum_k mu/2 ||W_k - Theta_k - beta_k/mu||^2."""

    name = "lc_penalty"

    def __init__(self, lc: "LC"):
        self._lc = lc

    def __call__(self, model: keras.Model) -> tf.Tensor:
        """Returns the penalty of the model's current weights."""
        lc = self._lc
        return tf.add_n(
            [
                c_step_lib.penalty(
                    model.get_layer(spec.name).kernel,
                    lc.theta[spec.name],
                    lc.beta[spec.name],
                    lc.mu,
                )
                for spec in lc.specs
            ]
        )


class LC(Callback):
    """C steps, multiplier updates and the mu schedule between L steps.

    Give the trainer `loss_terms` and the object itself as a callback; train
    for `config.lc_epochs` epochs. Training stops early once W and Theta
    agree to `config.tolerance`.

    Args:
        config: The LC hyperparameters.
        lam: The weight lambda of the cost term of this run.
        verbose: Print one line per layer after every C step.
        latency: The measured latencies, needed by the latency criterion.

    Attributes:
        specs: The compressed layers (set when training begins).
        theta, beta: Per layer name, Theta and the multipliers, kernel-shaped.
        mu: The penalty parameter of the current L step (a variable).
        steps: One record per C step: mu, total cost, objective, relative
            gap, wall time, and per layer rank, ||W - Theta||, the C-step
            objective and the collapse threshold of mu.
    """

    def __init__(
        self,
        config: LCConfig,
        lam: float,
        verbose: int = 1,
        latency: LatencyTable | None = None,
    ):
        self.config = config
        self.lam = float(lam)
        self.verbose = verbose
        self.latency = latency
        self.specs: list[LayerSpec] = []
        self.theta: dict[str, tf.Variable] = {}
        self.beta: dict[str, tf.Variable] = {}
        self.mu: tf.Variable | None = None
        self.steps: list[dict[str, Any]] = []
        self.converged = False
        self._restored: dict[str, np.ndarray] = {}

    @property
    def loss_terms(self) -> list[LCPenalty]:
        """The loss terms to give the trainer."""
        return [LCPenalty(self)]

    # ------------------------------------------------------------- binding
    def _bind(self, trainer) -> None:
        model = trainer.model
        self.specs = layer_specs(
            model, self.config.criterion, self.config.conv_scheme, self.latency
        )
        with trainer.strategy.scope():
            self.mu = tf.Variable(self.config.mu0, trainable=False, name="lc_mu")
            for spec in self.specs:
                kernel = model.get_layer(spec.name).kernel
                for table in (self.theta, self.beta):
                    table[spec.name] = tf.Variable(
                        tf.zeros_like(kernel), trainable=False
                    )

    def on_train_begin(self, trainer) -> None:
        """Binds to the model; runs the first C step, or restores the state."""
        if not self.theta:
            self._bind(trainer)
        if self._restored:
            for i, spec in enumerate(self.specs):
                self.theta[spec.name].assign(self._restored[f"theta_{i}"])
                self.beta[spec.name].assign(self._restored[f"beta_{i}"])
            self._restored = {}
            self.mu.assign(self.config.mu(len(self.steps) - 1))
        elif not self.steps:
            self._c_step(trainer.model, self.config.mu0)
            self.mu.assign(self.config.mu0)
        if self.converged:
            trainer.stop_training = True

    # ------------------------------------------------------------- C steps
    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        """After each L step: C step, multiplier update, next mu."""
        if (epoch + 1) % self.config.epochs_per_l_step:
            return
        mu = float(self.mu.numpy())
        try:
            record = self._c_step(trainer.model, mu)
        except SVDError as error:
            latest = trainer.checkpoints.latest() if trainer.checkpoints else None
            raise SVDError(
                f"{error} LC stopped; the last good checkpoint is {latest}."
            ) from error
        for spec in self.specs:
            kernel = trainer.model.get_layer(spec.name).kernel
            self.beta[spec.name].assign(
                c_step_lib.multiplier_update(
                    self.beta[spec.name], kernel, self.theta[spec.name], mu
                )
            )
        self.mu.assign(self.config.mu(len(self.steps) - 1))
        logs.update(
            {
                "lc_mu": mu,
                "lc_gap": record["relative_gap"],
                "lc_cost": record["cost"],
            }
        )
        logs.update(
            {
                f"lc_rank/{name}": entry["rank"]
                for name, entry in record["layers"].items()
            }
        )
        self.converged = record["relative_gap"] < self.config.tolerance
        if self.converged:
            if self.verbose:
                print(
                    f"LC converged: ||W - Theta|| / ||W|| = "
                    f"{record['relative_gap']:.2e} < {self.config.tolerance}."
                )
            trainer.stop_training = True

    def _c_step(self, model: keras.Model, mu: float) -> dict[str, Any]:
        """Sets Theta from W - beta/mu for every layer; records the step."""
        start = time.perf_counter()
        layers, cost, objective, gap2, norm2 = {}, 0.0, 0.0, 0.0, 0.0
        for spec in self.specs:
            kernel = model.get_layer(spec.name).kernel
            shifted = spec.matrix(kernel - self.beta[spec.name] / mu)
            result = c_step_lib.c_step(
                shifted,
                alpha=spec.alpha,
                dense_cost=spec.dense_cost,
                lam=self.lam,
                mu=mu,
                min_rank=self.config.min_rank,
                name=spec.name,
                offset=spec.offset,
                rank_multiple=self.config.rank_multiple,
            )
            theta = spec.kernel(result.theta)
            self.theta[spec.name].assign(theta)
            gap = float(tf.norm(kernel - theta))
            gap2 += gap**2
            norm2 += float(tf.norm(kernel)) ** 2
            cost += spec.cost(result.rank, result.dense)
            objective += result.objective
            layers[spec.name] = {
                "rank": result.rank,
                "dense": result.dense,
                "gap": gap,
                "objective": result.objective,
                "collapse_mu": result.collapse_mu,
            }
        record = {
            "step": len(self.steps),
            "mu": mu,
            "cost": cost,
            "objective": objective,
            "relative_gap": math.sqrt(gap2 / max(norm2, 1e-30)),
            "layers": layers,
            "time_s": time.perf_counter() - start,
        }
        self.steps.append(record)
        if self.verbose:
            print(format_c_step(record))
        return record

    # ------------------------------------------------------------- results
    def choices(self) -> dict[str, RankChoice]:
        """The ranks of the last C step, with Theta as each layer's matrix."""
        last = self.steps[-1]["layers"]
        return {
            spec.name: RankChoice(
                rank=last[spec.name]["rank"],
                dense=last[spec.name]["dense"],
                matrix=keras.ops.convert_to_numpy(spec.matrix(self.theta[spec.name])),
            )
            for spec in self.specs
        }

    def get_state(self) -> dict[str, Any]:
        """Theta, beta and the step records."""
        state = {
            "steps": json.dumps(self.steps),
            "converged": int(self.converged),
        }
        for i, spec in enumerate(self.specs):
            state[f"theta_{i}"] = keras.ops.convert_to_numpy(self.theta[spec.name])
            state[f"beta_{i}"] = keras.ops.convert_to_numpy(self.beta[spec.name])
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores `get_state` (applied when training begins)."""
        if "steps" not in state:
            return
        self.steps = json.loads(str(state["steps"]))
        self.converged = bool(int(state["converged"]))
        self._restored = {
            key: value
            for key, value in state.items()
            if key.startswith(("theta_", "beta_"))
        }


def format_c_step(record: dict[str, Any]) -> str:
    """Returns one header line and one line per layer of a C-step record."""
    lines = [
        f"C step {record['step']}: mu {record['mu']:.4g}  cost {record['cost']:,.0f}"
        f"  objective {record['objective']:.4g}"
        f"  ||W - Theta||/||W|| {record['relative_gap']:.3g}"
    ]
    for name, entry in record["layers"].items():
        rank = f"{entry['rank']} (dense)" if entry["dense"] else str(entry["rank"])
        lines.append(
            f"  {name:<16} rank {rank:<12} ||W - Theta|| {entry['gap']:.4g}"
            f"  collapse below mu {entry['collapse_mu']:.3g}"
        )
    return "\n".join(lines)


def step_ranks(steps: list[dict[str, Any]]) -> dict[str, list[int]]:
    """Returns each layer's rank over the C steps (for the ranks plot)."""
    names = list(steps[0]["layers"]) if steps else []
    return {name: [step["layers"][name]["rank"] for step in steps] for name in names}


class LCFitCallback(FitCallback):
    """LC in the user's own `Model.fit`: its epochs are the L steps.

    The first C step runs when training begins; the penalty then joins the
    compiled loss (`FitCallback`'s loss terms, logged as ``lc_penalty``),
    and every `epochs_per_l_step` epochs a C step follows. After `fit`,
    `low_rank_model()` is the net of the ranks found (Theta as the weights),
    to fine-tune with `fit` again and export. The penalty leaves the loss
    when training ends.

    Args:
        config: The LC settings (`criterion`, `mu0`, `mu_growth`, ...).
        lam: This run's lambda (one; `config.lambdas` is the trainer's).
        verbose: Print each C step.
        latency: The measured latencies, for the latency criterion.
    """

    def __init__(
        self,
        config: LCConfig,
        lam: float,
        verbose: int = 0,
        latency: LatencyTable | None = None,
    ):
        lc = LC(config, lam, verbose=verbose, latency=latency)
        super().__init__(lc, "LC", loss_terms=lc.loss_terms)

    def low_rank_model(self) -> keras.Model:
        """The trained model with the last C step's ranks, Theta as weights."""
        return low_rank_model(self.model, self.callback.specs, self.callback.choices())
