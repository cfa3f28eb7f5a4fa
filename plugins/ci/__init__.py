"""The pull-request workflow: `ml ci plan` (validate, format check, plan, one plan comment updated in place)."""
