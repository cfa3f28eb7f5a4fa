"""The `detector` block of a Monitor on the scipy-drift backend (minus `backend`). Only pydantic here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml_framework.plugins.monitoring.settings import ReferenceSettings  # shared by drift backends

__all__ = ["ScipyDriftSettings", "PSISettings", "ReferenceSettings", "METHODS"]

METHODS = ("auto", "ks", "chi2", "psi")
ALIASES = {"tabular": "auto"}  # alibi-detect's name for the same tests: a Monitor switches by `backend` alone


class PSISettings(BaseModel):
    """Population stability index: numeric features binned at the reference's quantiles (``bins`` bins of
    equal reference mass), categorical ones per category; a feature drifts when its PSI reaches
    ``threshold`` (0.1: a small shift, 0.2: a significant one, by the usual rule of thumb)."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(default=0.2, gt=0)
    bins: int = Field(default=10, ge=2, le=100)


class ScipyDriftSettings(BaseModel):
    """How drift is tested (field names and meanings as alibi-detect's settings, where they exist there).

    * ``method``: ``auto`` (default; per feature, the two-sample Kolmogorov-Smirnov test
      ``scipy.stats.ks_2samp`` for numeric features and the chi-squared test ``scipy.stats.chi2_contingency``
      for categorical ones: alibi-detect's TabularDrift, which ``tabular`` also names), ``ks`` (numeric
      features only; categorical ones are listed as not tested), ``chi2`` (categorical features only), ``psi``
      (the population stability index per feature against ``psi.threshold``; no p-values, no correction).
    * ``p_val``: the significance of the whole check; ``correction`` spreads it over the per-feature tests
      (``bonferroni`` or ``fdr``). With ``predictions: true`` the prediction distribution is one more test
      in the same family.
    * ``categorical``: features to treat as categorical besides text/bool ones and those the model was
      trained with as categorical.
    * ``reference``: the data compared with (default: the version's training frame), sampled to ``max_rows``.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["auto", "ks", "chi2", "psi"] = "auto"
    p_val: float = Field(default=0.05, gt=0, lt=0.5)
    correction: Literal["bonferroni", "fdr"] = "bonferroni"
    categorical: list[str] = Field(default_factory=list)
    reference: ReferenceSettings = Field(default_factory=ReferenceSettings)
    psi: PSISettings = Field(default_factory=PSISettings)

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, value):
        if not isinstance(value, str) or value in METHODS:
            return value
        if value in ALIASES:
            return ALIASES[value]
        if value == "mmd":
            raise ValueError("method 'mmd' (a multivariate permutation test) is alibi-detect's: "
                             f"scipy-drift offers {', '.join(METHODS)} (or use backend alibi-detect)")
        from ml_framework.errors import did_you_mean

        hint = did_you_mean(value, METHODS + tuple(ALIASES))
        raise ValueError(f"unknown method {value!r}; " + (hint or f"expected one of {', '.join(METHODS)}"))
