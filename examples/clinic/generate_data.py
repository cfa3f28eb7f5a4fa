"""The clinic example's data, from the diabetes data set that scikit-learn bundles (nothing downloaded):
patients seen several times over a season, each visit's measurements, and the outcome a year later.

    python examples/clinic/generate_data.py [--out examples/clinic/data] [--rows 4000] [--seed 11]

Writes (parquet):
  visits.parquet    patient_id, visit_ts, age, sex, bmi, bp, s1..s6  (the measurements, standardised as
                    scikit-learn ships them; `sex` as "F"/"M")
  outcomes.parquet  patient_id, visit_ts, progression (a disease-progression score, regression) and
                    band ("low" / "medium" / "high", multiclass)
  band-api.keys     a random API key for the band service (once; kept when it exists)
Each visit resamples one of the 442 patients of the data set with a little noise, so the relation
between measurements and outcome is the real one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

MEASUREMENTS = ["age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def generate(out: Path, rows: int = 4000, seed: int = 11, patients: int = 400,
             start: str = "2026-01-05T08:00:00Z", days: int = 120) -> None:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame
    rng = np.random.default_rng(seed)
    source = rng.integers(0, len(data), patients)  # each patient is one person of the data set
    visits_of = rng.integers(0, patients, rows)
    base = data.iloc[source[visits_of]].reset_index(drop=True)
    noise = rng.normal(0, 0.004, (rows, len(MEASUREMENTS)))
    when = pd.Timestamp(start) + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, rows)), unit="s")
    visits = pd.DataFrame({"patient_id": (1000 + visits_of).astype("int64"), "visit_ts": when.round("s")})
    for i, column in enumerate(MEASUREMENTS):
        visits[column] = (base[column].to_numpy() + noise[:, i]).astype("float64")
    visits["sex"] = np.where(base["sex"].to_numpy() > 0, "M", "F")
    progression = base["target"].to_numpy() + rng.normal(0, 8, rows)
    low, high = np.quantile(progression, [1 / 3, 2 / 3])
    outcomes = pd.DataFrame({
        "patient_id": visits["patient_id"], "visit_ts": visits["visit_ts"],
        "progression": progression.round(1),
        "band": np.where(progression < low, "low", np.where(progression < high, "medium", "high")),
    })
    out.mkdir(parents=True, exist_ok=True)
    visits.to_parquet(out / "visits.parquet", index=False)
    outcomes.to_parquet(out / "outcomes.parquet", index=False)
    keys = out / "band-api.keys"
    if not keys.exists():  # the band service's API key: random, never committed (data/ is ignored)
        import os
        import secrets

        keys.write_text(f"# one API key per line (band-api)\n{secrets.token_urlsafe(24)}\n")
        os.chmod(keys, 0o600)


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=here / "data")
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    generate(args.out, rows=args.rows, seed=args.seed)
    print(f"wrote {args.rows} visits to {args.out}")


if __name__ == "__main__":
    main()
