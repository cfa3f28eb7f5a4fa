"""Tabular preprocessing for the MLP, fitted on the training split and saved as plain JSON.

Numeric columns: missing values -> the training median, then standardised with the training mean and
standard deviation. Categorical columns: one-hot over the training categories (an unknown or missing
value is all zeros). Imports numpy/pandas only, so serving can use it without torch's training code.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["fit_preprocessor", "transform"]


def fit_preprocessor(X, categorical: Mapping[str, list[Any]]) -> dict[str, Any]:
    import numpy as np

    numeric = {}
    for column in X.columns:
        if column in categorical:
            continue
        values = X[column].astype("float64").to_numpy()
        finite = values[np.isfinite(values)]
        median = float(np.median(finite)) if len(finite) else 0.0
        filled = np.where(np.isfinite(values), values, median)
        std = float(filled.std())
        numeric[column] = {"median": median, "mean": float(filled.mean()), "std": std if std > 0 else 1.0}
    return {"columns": list(X.columns), "numeric": numeric,
            "categorical": {c: [str(v) for v in cats] for c, cats in categorical.items()}}


def transform(X, prep: Mapping[str, Any]):
    """A float32 matrix (rows x inputs) in the column order the model was trained with."""
    import numpy as np

    blocks = []
    for column in prep["columns"]:
        if column in prep["numeric"]:
            stats = prep["numeric"][column]
            values = X[column].astype("float64").to_numpy()
            values = np.where(np.isfinite(values), values, stats["median"])
            blocks.append(((values - stats["mean"]) / stats["std"])[:, None])
        else:
            categories = prep["categorical"][column]
            index = {v: i for i, v in enumerate(categories)}
            codes = np.array([index.get(str(v), -1) if v is not None and v == v else -1
                              for v in X[column].astype("object").to_numpy()])
            onehot = np.zeros((len(codes), len(categories)))
            rows = np.nonzero(codes >= 0)[0]
            onehot[rows, codes[rows]] = 1.0
            blocks.append(onehot)
    if not blocks:
        return np.zeros((len(X), 0), dtype=np.float32)
    return np.hstack(blocks).astype(np.float32)


def input_width(prep: Mapping[str, Any]) -> int:
    return len(prep["numeric"]) + sum(len(c) for c in prep["categorical"].values())
