"""The features domain plugin: the feature kinds. The feast plugin implements them (backend ``feast``)."""

from ml_framework.contract import Kind, Plugin

_KINDS = "ml_framework.plugins.features.kinds:"

EXAMPLE_SPECS = """\
# Specs: one YAML document per resource; several per file are fine.
# Editor completion: `ml schema -o .ml-schema.json` and point yaml-language-server at it.
kind: Entity
name: customer
description: A card holder.
join_keys: [customer_id]
---
kind: Source
name: customer_stats
path: data/customer_stats.csv
timestamp_field: event_ts
---
kind: FeatureView
name: customer_stats
entities: [customer]
source: customer_stats
ttl: 7d
features:
  amount_mean_7d: {dtype: float32, checks: {ge: 0}}
  txn_count_7d: {dtype: int64, checks: {ge: 0}}
"""

SAMPLE_DATA = """\
customer_id,event_ts,amount_mean_7d,txn_count_7d
1001,2026-01-01T00:00:00Z,42.5,3
1002,2026-01-01T00:00:00Z,17.0,8
1003,2026-01-02T00:00:00Z,120.25,1
1001,2026-01-03T00:00:00Z,40.0,4
"""

PROD_OVERLAY = """\
# `ml plan env=prod` merges this over the specs, keyed by kind then name.
feature_views:
  customer_stats:
    ttl: 14d
"""

plugin = Plugin(
    name="features",
    description="Feature stores, entities, sources, feature views and feature services.",
    kinds=(
        Kind("FeatureStore", plural="feature_stores", schema=_KINDS + "FeatureStore", default_backend="feast"),
        Kind("Entity", plural="entities", schema=_KINDS + "Entity", default_backend="feast"),
        Kind("Source", plural="sources", schema=_KINDS + "Source", default_backend="feast", style="data"),
        Kind("FeatureView", plural="feature_views", schema=_KINDS + "FeatureView", default_backend="feast", style="data",
             references={"entities": "Entity", "store": "FeatureStore"}),
        Kind("FeatureService", plural="feature_services", schema=_KINDS + "FeatureService", default_backend="feast"),
        Kind("OnDemandFeatureView", plural="on_demand_feature_views", schema=_KINDS + "OnDemandFeatureView",
             default_backend="feast", style="data", references={"views": "FeatureView"},
             description="Features computed per request (and per training row) from request fields and online "
                         "features, by checked expressions."),
    ),
    checks=("ml_framework.plugins.features.spec_checks:check_on_demand_views",),
    services={"ui.page.features": "ml_framework.plugins.features.ui:features_page"},
    scaffold={"specs/features.yaml": EXAMPLE_SPECS, "specs/env/prod.yaml": PROD_OVERLAY,
              "data/customer_stats.csv": SAMPLE_DATA},
)
