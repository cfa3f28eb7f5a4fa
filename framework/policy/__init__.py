"""Policy checks: project rules (``policies/*.yaml``) evaluated over every plan, with Sentinel's levels."""

from .check import PolicyError, blocking_message, check_overrides, evaluate
from .rules import ADVISORY, HARD_MANDATORY, LEVELS, POLICY_DIR, SOFT_MANDATORY, Rule, load_rules

__all__ = ["ADVISORY", "SOFT_MANDATORY", "HARD_MANDATORY", "LEVELS", "POLICY_DIR", "Rule", "load_rules",
           "PolicyError", "evaluate", "check_overrides", "blocking_message"]
