"""R8: each image/audio branch has ≥ 2 conv+pool stages and ≥ 2 FC layers ending in softmax."""

from __future__ import annotations

from itertools import pairwise

import pytest

from models.categories import CATEGORIES, EMR_ENTRY, INPUT_NAMES
from models.runtime import RelevanceModel


@pytest.mark.parametrize("category", CATEGORIES)
def test_branch_shape_follows_r8(category: str, demo_model: RelevanceModel) -> None:
    import keras  # type: ignore[import-untyped]  # the training extra (dev and CI install it); never needed at run time

    from models.branches import build_branch

    branch = demo_model.card.branches[category]
    model = build_branch(category, branch.input_shape, len(demo_model.labels))
    layers = model.layers
    kinds = [type(layer).__name__ for layer in layers]
    dense = [layer for layer in layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) >= 2
    assert dense[-1] is layers[-1]
    assert dense[-1].activation.__name__ == "softmax"
    assert dense[-1].units == len(demo_model.labels)
    assert model.input.name == INPUT_NAMES[category] or INPUT_NAMES[category] in model.input.name
    if category == EMR_ENTRY:
        assert "Conv2D" not in kinds  # the card says why
        assert "no convolution" in demo_model.card.data["branches"][category]["architecture"]
        return
    # every conv directly followed by a pool, at least twice
    stages = sum(1 for a, b in pairwise(kinds) if a == "Conv2D" and b == "MaxPooling2D")
    assert stages >= 2
    assert model.count_params() == demo_model.card.data["branches"][category]["parameters"]
