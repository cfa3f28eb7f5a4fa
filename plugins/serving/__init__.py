"""The serving domain: the Deployment kind and what belongs to it whatever serves the traffic.

Nothing heavy is imported by this package itself. Modules, one job each:
  kinds           the Deployment spec: input contract, auth, rate limit, rollout and its analysis
  rollout         the rollout engine: strategies as steps, analysis verdicts, rollback decisions
  prediction_log  the bounded, non-blocking prediction log every serving backend writes
  cli             `ml status` and `ml rollback`
"""

__all__: list[str] = []
