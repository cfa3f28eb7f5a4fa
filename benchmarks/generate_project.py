"""Write a synthetic `ml` project of N resources, for benchmarks and scale tests.

    python benchmarks/generate_project.py OUT_DIR --resources 1000 [--per-file 50]

The project is a realistic mix, in groups of ten resources (one "domain" each):

* 1 Entity, 2 Sources (with typed columns and dataset checks),
* 5 FeatureViews, each referencing the group's entity and one of its sources (two of them also a
  second entity from the previous group, so references cross files),
* 2 Models, each reading features from several views of its own group and from the previous group,
  and a label from one of the group's sources.

Every resource uses the `memory` backend (`backend: memory`, `trainer: {backend: memory}`), which the
generated `ml.yaml` maps to a local plugin module `memplugin.py` exposing
``provider = ml_framework.testing.InMemoryProvider()``. Files hold about `--per-file` resources each,
several YAML documents per file separated by ``---``. A partial last group keeps only resources whose
references exist (entities and sources come first), so every N validates.

Importable: ``generate(out_dir, n_resources, per_file=50) -> Path`` (the spec directory).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

__all__ = ["generate", "resource_docs", "GROUP_SIZE"]

GROUP_SIZE = 10
PLUGIN_MODULE = "memplugin"

ML_YAML = f"""\
name: generated
specs: specs
state: sqlite:///.ml/state.db
plugins:
  local:
    memory: "{PLUGIN_MODULE}:provider"
"""

PLUGIN_SOURCE = '''\
"""Local plugin of the generated benchmark project: an in-memory provider for every kind."""
from ml_framework.testing import InMemoryProvider

provider = InMemoryProvider()
'''


def _entity(g: int) -> str:
    return f"""\
kind: Entity
name: customer_{g}
description: Customer of domain {g}
labels: {{team: domain-{g % 7}, tier: gold}}
join_keys: [customer_{g}_id]
dtype: int64
backend: memory
"""


def _source(g: int, s: int) -> str:
    return f"""\
kind: Source
name: events_{g}_{s}
description: Raw events {s} of domain {g}
path: data/domain_{g}/events_{s}.parquet
timestamp_field: event_ts
created_timestamp_field: created_ts
columns:
  customer_{g}_id: {{dtype: int64, checks: {{nullable: false}}}}
  amount: {{dtype: float64, checks: {{ge: 0, le: 100000}}}}
  channel: {{dtype: string, checks: {{isin: [web, app, store]}}}}
  is_fraud: {{dtype: bool}}
  event_ts: {{dtype: timestamp}}
checks: {{min_rows: 100, max_age: 2d}}
backend: memory
"""


def _feature_view(g: int, v: int) -> str:
    entities = [f"customer_{g}"]
    if g > 0 and v in (1, 3):  # a second entity from the previous group: references across files
        entities.append(f"customer_{g - 1}")
    features = "\n".join(
        f"  f{v}_{k}: {{dtype: {dtype}, description: feature {k} of view {v}{checks}}}"
        for k, (dtype, checks) in enumerate([("float64", ", checks: {ge: 0}"), ("int64", ""),
                                             ("float32", ", checks: {between: [0, 1]}"), ("string", "")])
    )
    return f"""\
kind: FeatureView
name: view_{g}_{v}
description: Aggregates {v} of domain {g}
labels: {{team: domain-{g % 7}}}
entities: [{", ".join(entities)}]
source: events_{g}_{v % 2}
ttl: {v + 1}d
online: {"true" if v % 2 == 0 else "false"}
features:
{features}
checks: {{min_rows: 10}}
backend: memory
"""


def _model(g: int, m: int) -> str:
    refs = [f"view_{g}_{v}:f{v}_{k}" for v in range(5) for k in (0, 1) if (v + m) % 2 == 0 or k == 0]
    if g > 0:
        refs += [f"view_{g - 1}_{m}:f{m}_0", f"view_{g - 1}_{m + 2}:f{m + 2}_1"]
    features = "\n".join(f"  - {r}" for r in refs)
    return f"""\
kind: Model
name: model_{g}_{m}
description: {"Fraud" if m == 0 else "Churn"} model of domain {g}
labels: {{owner: team-{g % 5}}}
task: {"binary" if m == 0 else "regression"}
label: {{source: events_{g}_{m}, column: is_fraud, timestamp_field: event_ts}}
features:
{features}
split: {{by: time, valid: 0.2, seed: {g}}}
trainer:
  backend: memory
  params: {{num_leaves: {31 + m}, learning_rate: 0.05, n_estimators: {100 + g % 50}}}
metrics: [auc, logloss]
gates: ["auc >= 0.7"]
"""


def resource_docs(n_resources: int) -> list[str]:
    """The YAML text of each of the first `n_resources` documents, dependencies first."""
    docs: list[str] = []
    g = 0
    while len(docs) < n_resources:
        group = [_entity(g), _source(g, 0), _source(g, 1)]
        group += [_feature_view(g, v) for v in range(5)]
        group += [_model(g, m) for m in range(2)]
        docs.extend(group[: n_resources - len(docs)])
        g += 1
    return docs


def generate(out_dir: Path, n_resources: int, *, per_file: int = 50, clean: bool = True) -> Path:
    """Write the project into `out_dir` (replacing its specs/ and state); return the spec directory."""
    out_dir = Path(out_dir)
    specs = out_dir / "specs"
    if clean:
        shutil.rmtree(specs, ignore_errors=True)
        shutil.rmtree(out_dir / ".ml", ignore_errors=True)
    specs.mkdir(parents=True, exist_ok=True)
    (out_dir / "ml.yaml").write_text(ML_YAML, encoding="utf-8")
    (out_dir / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    docs = resource_docs(n_resources)
    per_file = max(1, per_file)
    width = len(str(max(0, (len(docs) - 1) // per_file)))
    for index, start in enumerate(range(0, len(docs), per_file)):
        chunk = docs[start:start + per_file]
        (specs / f"part_{index:0{width}d}.yaml").write_text("---\n".join(chunk), encoding="utf-8")
    return specs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--resources", "-n", type=int, default=1000)
    parser.add_argument("--per-file", type=int, default=50)
    args = parser.parse_args(argv)
    specs = generate(args.out_dir, args.resources, per_file=args.per_file)
    files = len(list(specs.glob("*.yaml")))
    print(f"wrote {args.resources} resources in {files} files under {specs}")


if __name__ == "__main__":
    main()
