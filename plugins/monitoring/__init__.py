"""Monitoring, shared by drift backends: what `ml monitor run|watch|report` does besides the tests.

Nothing heavy is imported by this package itself. Modules, one job each:
  logcache      the prediction log as numpy columns, parsed once per segment and cached
  schema        features -> numbers/codes, reference histograms
  reference     the reference data of a model version (its training frame), sampled when large
  ground_truth  delayed labels joined to logged predictions; performance metrics per slice
  results       plain data of one run
  store         results as time series in the state database
  actions       alert (log line, webhook), retrain (plan + apply through the engine), rollback
  runner        one pass of a monitor: window -> checks -> store -> actions
  report        the self-contained HTML report (aggregates only)
  gauges        Prometheus text for a metrics endpoint or the service's /metrics
What drift backends (alibi-detect, scipy-drift) share:
  settings      the detector block's fields every backend has (reference: path, max_rows, seed)
  backend       DriftBackend: the Monitor kind's contract hooks, detector folders, open_checker
  detection     encoding the reference, the univariate tests and their correction, the checker's base
"""

__all__: list[str] = []
