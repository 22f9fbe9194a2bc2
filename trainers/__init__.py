"""The command-line entry points: ``python -m trainers.<command>``.

Importing the package imports TensorFlow with its C++ start-up lines kept
off stderr (`trainers.startup`; ``--tf_logs`` shows them).
"""

from trainers.startup import import_tensorflow_quietly

import_tensorflow_quietly()
