"""Export for phones: LiteRT files of trained models, checked and timed.

* `deployable_model` / `deployable_size`: any model keras_rank trains, in
  plain Keras layers (what ships, and its honest size).
* `export_litert`: one LiteRT file (float32, dynamic range, float16, int8)
  through Keras' own `model.export(format="litert")`, builtin ops only.
* `quantization_aware_int8`: int8 after quantization-aware training with
  TFMOT, through a tf_keras rebuild of the plain model in a subprocess.
* `export_models`: every model in every format, with accuracy of the files
  themselves, parity with Keras, file sizes and interleaved latency.
"""

from keras_rank.export.config import FORMATS, ExportConfig, parse_formats
from keras_rank.export.litert import export_litert
from keras_rank.export.qat import quantization_aware_int8
from keras_rank.export.run import export_models
from keras_rank.layers.deployable import deployable_model, deployable_size

__all__ = [
    "FORMATS",
    "ExportConfig",
    "deployable_model",
    "deployable_size",
    "export_litert",
    "export_models",
    "parse_formats",
    "quantization_aware_int8",
]
