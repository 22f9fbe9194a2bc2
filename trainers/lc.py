r"""Learns each layer's rank with the LC algorithm (Idelbayev & Carreira-Perpinan 2020).

    python -m trainers.lc --model=lenet300_tanh --epochs=30 \
        --optimizer=sgd --momentum=0.9 --nesterov --learning_rate=0.01 \
        --finetune_learning_rate=0.001 --lambda=2e-5,5e-5 --workdir=runs/lc

Trains the reference net (--epochs) in the work directory unless --reference
names a trained .keras file, then for every --lambda runs --lc_steps L steps
of --epochs_per_l_step epochs each followed by a C step, fixes the ranks,
fine-tunes the low-rank net for --finetune_epochs epochs, and does the same
for the two heuristic baselines at LC's cost. Re-running the same command
with the same --workdir resumes wherever it stopped.
"""

from absl import flags

from keras_rank import models
from keras_rank.core import user_models
from keras_rank.core.errors import ConfigError
from keras_rank.lc.config import LCConfig
from keras_rank.lc.run import train_lc
from keras_rank.training import TrainConfig
from trainers import common
from trainers.commands import COMMANDS, ReferenceArgs, WorkdirArgs

common.define_flags(*COMMANDS["lc"].configs)


def check_reference_is_named_model(reference: str, config: TrainConfig) -> None:
    """Refuses a --reference that is not the net --model / --model_path names.

    LC compresses the reference; a model flag given beside it only records
    what the reference is, so it must describe the same net (the same
    weight shapes, layer by layer).

    Raises:
        ConfigError: The two nets differ.
    """
    loaded = user_models.load_model_file(reference, argument="reference")
    if config.model_path is not None:
        named = user_models.load_model_file(config.model_path)
        flag = f"--model_path={config.model_path}"
    else:
        named = models.build_model(
            config.model, loaded.input_shape[1:], loaded.output_shape[-1]
        )
        flag = f"--model={config.model}"
    shapes = [[tuple(w.shape) for w in net.weights] for net in (loaded, named)]
    if shapes[0] != shapes[1]:
        raise ConfigError(
            f"Expected --reference to be the net {flag} names (LC compresses "
            f"the reference): their weights differ in shape. Received: "
            f"--reference={reference}, {flag}. Give --reference alone, or the "
            "model it was trained as."
        )


def main(argv: list[str]) -> None:
    """Entry point: flags -> configs -> one library call."""
    del argv  # parse_flags refused any positional argument

    def run():
        config = common.config_from_flags(TrainConfig)
        lc_config = common.config_from_flags(LCConfig)
        reference = common.config_from_flags(ReferenceArgs).reference
        workdir = common.config_from_flags(WorkdirArgs).workdir
        if reference is not None and (
            flags.FLAGS["model"].present or flags.FLAGS["model_path"].present
        ):
            check_reference_is_named_model(reference, config)
        train_lc(config, lc_config, workdir, reference=reference)

    common.run_or_exit(run)


if __name__ == "__main__":
    common.run_command("lc", main)
