"""What a command shows of TensorFlow's own messages: by default, only errors.

TensorFlow's C++ runtime writes start-up lines to stderr when it is imported
(CUDA probing, CPU features), whatever ``TF_CPP_MIN_LOG_LEVEL`` says for
some of them, and its Python logger prints every warning twice under absl
(its own handler, then absl's on the root logger); LC and prox trigger
tf.function retracing warnings. A command imports TensorFlow through
`import_tensorflow_quietly` and sets its logger with `show_tensorflow_logs`;
``--tf_logs`` (`LogArgs`) shows everything, each message once.
"""

import logging
import os
import re
import sys
import tempfile

TF_LOGS_FLAG = "--tf_logs"

# The C++ log lines (``I0000 00:00:1796629545.385336  18227 file.cc:31] ...``),
# absl's notice before its initialisation, and the CPU-features advice.
_START_UP_NOISE = re.compile(
    r"^[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    r"|^WARNING: All log messages before absl::InitializeLog\(\)"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
)


def _wants_tf_logs(argv: list[str]) -> bool:
    return any(arg in (TF_LOGS_FLAG, f"{TF_LOGS_FLAG}=true") for arg in argv[1:])


def import_tensorflow_quietly(argv: list[str] | None = None) -> None:
    """Imports TensorFlow and probes its devices, start-up lines kept off stderr.

    Lines that are not start-up noise (a real import error, say) are written
    to stderr after the import. Does nothing when TensorFlow is already
    imported or `argv` (default ``sys.argv``) holds ``--tf_logs``.
    ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 (C++ errors still show).
    """
    argv = sys.argv if argv is None else argv
    if "tensorflow" in sys.modules or _wants_tf_logs(argv):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf

            # Probing the devices is when a machine without CUDA says so.
            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines():
                if line.strip() and not _START_UP_NOISE.match(line):
                    print(line, file=sys.stderr)


def show_tensorflow_logs(show: bool) -> None:
    """Sets TensorFlow's Python logger: errors only, or everything once.

    Args:
        show: Show warnings (retracing, deprecations) too.
    """
    logger = logging.getLogger("tensorflow")
    logger.setLevel(logging.WARNING if show else logging.ERROR)
    # TF's logger has a handler of its own: absl's, on the root logger,
    # would print each message a second time.
    logger.propagate = False
