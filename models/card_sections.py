"""The model card's prose sections (Mitchell et al., "Model Cards for Model Reporting")
and the EMR branch's logistic-regression baseline, written into every card."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from models.dataset import CategoryData
from models.evaluate import classification_metrics, wilson_interval

# The intended uses the training tools write, in Chinese (a card's ``intended_use_zh``:
# a card is the model maker's text, not the catalogue's).
INTENDED_USE_ZH = {
    "demonstration model — not for clinical use": "演示模型——不用于临床",
    "decision support only — not a diagnosis; validate locally before clinical use": (
        "仅供辅助决策，非诊断；临床使用前须经本地验证"
    ),
}


def sections(synthetic: Sequence[str]) -> dict[str, Any]:
    """Out-of-scope use, factors, ethical considerations, caveats (issue 18)."""
    caveats = [
        "Metrics are on a frozen held-out test split of the training data's own "
        "distribution, not a clinical validation; the intervals are 95 % Wilson "
        "intervals of the test accuracy.",
        "Out-of-scope images are refused by a coarse descriptor distance, not by a "
        "validated detector; an image close to the training data in those statistics "
        "is scored even if it shows something else.",
        "EMR entries with fewer than half of the expected fields are refused; missing "
        "fields of the others are replaced by training means and listed with the result.",
    ]
    if synthetic:
        caveats.append(
            f"The branches {list(synthetic)} learned from synthetic data: they are used "
            "only when a site enables demonstration branches, and then weigh at most 20 % "
            "beside a real-data branch."
        )
    return {
        "out_of_scope_use": [
            "Making or replacing a diagnosis: the output is decision support, a relevance "
            "per disease category, shown with its basis.",
            "Patients, diseases, devices or record kinds unlike the training data "
            "(other disease areas, other imaging equipment, children).",
            "Any use of branches trained on synthetic data for real patients.",
        ],
        "factors": [
            "Per data category (branch): its own training data, metrics and weight.",
            "Not evaluated per age, sex, ethnicity, skin type, site or device: the "
            "training data does not record them.",
        ],
        "ethical_considerations": [
            "Clinic cases are used for training only with the patient's training "
            "consent, checked at export, de-identified; the server records which "
            "patients (internal ids) each model version used.",
            "A confident score can mislead: every view shows the branches, weights, "
            "skipped records and imputed fields behind it, and the model version.",
        ],
        "caveats": caveats,
    }


def emr_baseline(data: CategoryData, labels: Sequence[str], seed: int) -> dict[str, Any]:
    """A plain logistic regression on the EMR branch's own standardised split."""
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    x_train, y_train = data.part("train")
    x_test, y_test = data.part("test")
    model = LogisticRegression(max_iter=2000, random_state=seed).fit(x_train, y_train)
    metrics = classification_metrics(y_test, model.predict_proba(x_test), list(labels))
    n = int(metrics["n"])
    return {
        "model": "scikit-learn LogisticRegression (L2, C=1) on the same standardised "
        "features and train split",
        "test": {
            "n": n,
            "accuracy": metrics["accuracy"],
            "balanced_accuracy": metrics["balanced_accuracy"],
            "accuracy_95": wilson_interval(round(metrics["accuracy"] * n), n),
        },
    }
