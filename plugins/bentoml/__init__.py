"""The bentoml backend: Deployment specs served by a real `bentoml serve` process per deployment, with
model versions rolled out inside it (canary, shadow, a/b, blue/green) under analysis, and rolled back.

Registered as the ``bentoml`` entry point of the ``ml.providers`` group. Importing this package is
cheap: BentoML, LightGBM and pandas are imported only by the service process (and Feast only there
when requests carry entity keys).

Modules, one job each:
  provider   BentoMLProvider: the contract hooks, `ml status` and `ml rollback`
  deploy     one apply: ensure the process, then roll the resolved version out
  revisions  the revision history in state outputs; rollback targets
  config     the `serving` block's settings model
  codegen    the service folder: generated service.py, config.json, bentofile.yaml
  control    control.json: which versions serve and how traffic splits; worker acknowledgements
  process    starting, checking and stopping `bentoml serve` on loopback
  analysis   rollout analysis samples read from the prediction log
  runtime    inside the service: routing, validation, features, prediction, logging, metrics
  gateway    inside the service: the ASGI middleware serving POST /predict; the API method's body
  guards     inside the service: API keys and rate limits
  predictor  model versions loaded for serving (LightGBM without pandas per request)
  testing    helpers for tests and benchmarks: specs, a load generator, cleanup
"""

from .provider import BentoMLProvider

__all__ = ["BentoMLProvider"]
