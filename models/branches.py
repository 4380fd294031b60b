"""The five branch networks (R8), one Keras model per data category.

Each branch is trained as its own Keras model: a patient rarely has records of every
category, so there is no joint example to train a multi-input network on; separate
models can also be evaluated, weighted (for the fusion) and retrained one by one.
The export puts them all in one ``.tflite`` with one signature per category.

Image and audio branches (clinical_photo, record_scan, ct_image, voice_note): the
input is centred (x·2 − 1; in our trials, training from [0, 1] inputs stalled at
chance for more seeds than from centred ones), then four stages of 3×3 convolution
(8, 16, 32, 32 filters, ReLU, same padding) each followed by 2×2 max pooling,
then flatten, dropout 0.2 (training only), two fully connected ReLU layers (32, 16)
and a fully connected softmax layer over the labels. That is
≥ 2 conv+pool stages and ≥ 2 fully connected layers ending in softmax, as R8 asks,
in about 28–32 k parameters per branch (≈ 32 kB as int8).

The EMR branch takes a vector of standardised tabular features (the demo: the 30
Wisconsin measurements). It has the same fully connected head (32, 16, softmax) but
no convolution: the features have no spatial or temporal neighbourhood, so a
convolution over their arbitrary order would only learn artefacts of that order.
The model card says so.

TensorFlow/Keras are imported here and in training/export only, never at run time.
"""

from __future__ import annotations

import logging
from typing import Any

import keras  # type: ignore[import-untyped]

from models.categories import EMR_ENTRY, INPUT_NAMES, OUTPUT_NAME, check_category

_LOGGER = logging.getLogger(__name__)

CONV_FILTERS = (8, 16, 32, 32)
DENSE_UNITS = (32, 16)
DROPOUT = 0.2
LEARNING_RATE = 2e-3
BATCH_SIZE = 16

# Epochs per branch when not given: the small tabular set needs more passes.
DEFAULT_EPOCHS = {
    "clinical_photo": 25,
    "record_scan": 25,
    "ct_image": 25,
    "voice_note": 25,
    EMR_ENTRY: 20,
}

CONV_ARCHITECTURE = (
    "Rescaling [0, 1] → [-1, 1] → 4 × [Conv2D 3×3 (8, 16, 32, 32 filters, ReLU, same) "
    "+ MaxPool 2×2] → Flatten → Dropout 0.2 (training only) → Dense 32 ReLU → Dense 16 ReLU "
    "→ Dense N softmax"
)
EMR_ARCHITECTURE = (
    "Dense 32 ReLU → Dense 16 ReLU → Dense N softmax on the standardised feature "
    "vector; no convolution: tabular features have no spatial or temporal "
    "neighbourhood, so conv+pool (R8's image/audio shape) would only learn artefacts "
    "of the arbitrary feature order"
)


def architecture(category: str) -> str:
    """The branch architecture in words, for the model card."""
    return EMR_ARCHITECTURE if check_category(category) == EMR_ENTRY else CONV_ARCHITECTURE


def build_branch(category: str, input_shape: tuple[int, ...], n_labels: int) -> Any:
    """An uncompiled Keras model for ``category``: input named per category, softmax out."""
    check_category(category)
    inputs = keras.Input(shape=input_shape, name=INPUT_NAMES[category])
    x = inputs
    if category != EMR_ENTRY:
        x = keras.layers.Rescaling(2.0, offset=-1.0, name="centre")(x)
        for stage, filters in enumerate(CONV_FILTERS, start=1):
            x = keras.layers.Conv2D(
                filters, 3, padding="same", activation="relu", name=f"conv{stage}"
            )(x)
            x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dropout(DROPOUT, name="dropout")(x)
    for number, units in enumerate(DENSE_UNITS, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"fc{number}")(x)
    outputs = keras.layers.Dense(n_labels, activation="softmax", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name=category)


def compile_branch(model: Any) -> None:
    """Adam + sparse categorical cross-entropy, accuracy reported per epoch."""
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
