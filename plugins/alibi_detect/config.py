"""The `detector` block of a Monitor on the alibi-detect backend (minus `backend`). Only pydantic here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ml_framework.plugins.monitoring.settings import ReferenceSettings  # shared by drift backends

__all__ = ["AlibiDetectSettings", "ReferenceSettings", "MMDSettings"]


class MMDSettings(BaseModel):
    """Maximum mean discrepancy: one multivariate permutation test (alibi-detect's MMDDrift)."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["pytorch"] = "pytorch"
    n_permutations: int = Field(default=100, ge=10, le=10_000)
    max_rows: int = Field(default=2_000, ge=50, le=20_000)  # reference and window are sampled to this (O(n^2))


class AlibiDetectSettings(BaseModel):
    """How drift is tested.

    * ``method``: ``tabular`` (default; alibi-detect's TabularDrift: Kolmogorov-Smirnov for numeric
      features, chi-squared for categorical ones), ``ks`` (KSDrift: numeric features only; categorical
      ones are listed as not tested), ``mmd`` (MMDDrift with the PyTorch backend: one multivariate test
      over standardised numeric and one-hot categorical features; no per-feature p-values).
    * ``p_val``: the significance of the whole check; ``correction`` spreads it over the per-feature tests
      (``bonferroni`` or ``fdr``). With ``predictions: true`` the prediction distribution is one more test
      in the same family (with ``mmd``: the two tests each get ``p_val / 2``).
    * ``categorical``: features to treat as categorical besides text/bool ones and those the model was
      trained with as categorical.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["tabular", "ks", "mmd"] = "tabular"
    p_val: float = Field(default=0.05, gt=0, lt=0.5)
    correction: Literal["bonferroni", "fdr"] = "bonferroni"
    categorical: list[str] = Field(default_factory=list)
    reference: ReferenceSettings = Field(default_factory=ReferenceSettings)
    mmd: MMDSettings = Field(default_factory=MMDSettings)
