"""The lightgbm flavour: a saved LightGBM booster (``saved_model.ubj``) loaded for prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["LightGBMFlavor", "flavor"]

SMALL_BATCH = 1024  # rows predicted on the calling thread alone


class LightGBMFlavor:
    name = "lightgbm"

    def load(self, folder: Path, schema: Mapping[str, Any]) -> Callable[[Any], Any]:
        import lightgbm as lgb

        from ml_framework.plugins.models.prepare import encode_features

        features = list(schema["features"])
        categorical = {c: list(v) for c, v in (schema.get("categorical") or {}).items()}
        booster = lgb.Booster(model_file=str(Path(folder) / "saved_model.ubj"))

        def predict(frame):
            return booster.predict(encode_features(frame, features, categorical))

        return predict

    def load_rows(self, folder: Path, schema: Mapping[str, Any]):
        """Rows built straight from a request's values (categories mapped to the codes LightGBM was trained
        with, unknown ones missing): the numbers :meth:`load` gives, without a DataFrame per request."""
        import lightgbm as lgb
        import numpy as np

        booster = lgb.Booster(model_file=str(Path(folder) / "saved_model.ubj"))
        nan = float("nan")
        categorical = {c: list(v) for c, v in (schema.get("categorical") or {}).items()}
        plan = [(name, {value: float(i) for i, value in enumerate(categorical[name])} if name in categorical else None)
                for name in schema["features"]]

        def encode(values: Mapping[str, Any]) -> list[float]:
            row = []
            for name, mapping in plan:
                value = values.get(name)
                if value is None:
                    row.append(nan)
                elif mapping is not None:
                    row.append(mapping.get(value, nan))
                else:
                    row.append(float(value))
            return row

        def predict_batch(rows):
            # One thread for request-sized inputs: an OpenMP team gains nothing on a few rows, and its idle
            # threads spin after every call, taking a core from the event loop (measured: ~2x CPU per request).
            threads = 1 if len(rows) <= SMALL_BATCH else 0
            return booster.predict(np.asarray(rows, dtype=np.float64), num_threads=threads)

        return encode, predict_batch


    def load_explainer(self, folder: Path, schema: Mapping[str, Any]):
        """``explain(rows) -> array (rows, [classes,] features + 1)``: each feature's exact contribution to the
        raw output (LightGBM's ``pred_contrib``, TreeSHAP), the expected value last; rows as ``load_rows``
        encodes them. The contributions and the expected value add up to the raw output (log-odds for a
        binary model, the value for regression, each class's raw score for multiclass)."""
        import lightgbm as lgb
        import numpy as np

        booster = lgb.Booster(model_file=str(Path(folder) / "saved_model.ubj"))
        width = len(schema["features"]) + 1

        def explain(rows):
            threads = 1 if len(rows) <= SMALL_BATCH else 0
            out = booster.predict(np.asarray(rows, dtype=np.float64), pred_contrib=True, num_threads=threads)
            out = np.asarray(out)
            return out.reshape(len(rows), -1, width) if out.shape[1] != width else out

        return explain

    def gain_importance(self, folder: Path, schema: Mapping[str, Any]) -> dict[str, float]:
        """Total split gain per feature (LightGBM's ``feature_importance("gain")``)."""
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(Path(folder) / "saved_model.ubj"))
        gains = booster.feature_importance(importance_type="gain")
        return {name: float(g) for name, g in zip(schema["features"], gains)}


def flavor(services) -> LightGBMFlavor:
    return LightGBMFlavor()
