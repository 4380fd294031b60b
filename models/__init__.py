"""Disease-relevance model: definition, training, int8 export and the runtime wrapper.

One branch per record category (R8), trained with Keras (``models.train``), exported
as one full-int8 ``.tflite`` with a signature per category plus a model card
(``models.export``), run without TensorFlow on the appliance and the server
(``models.runtime``), patient-level fusion in ``models.fusion``. The shipped demo
model (``models/demo/``) is rebuilt by ``python -m models.build_demo``. See
models/README.md. Importing this package imports nothing heavy.
"""

from __future__ import annotations
