"""The CI plugin: `ml ci`, the steps a pull request's pipeline runs (the shipped workflows in examples/ci call it)."""

from ml_framework.contract import Command, Plugin

plugin = Plugin(
    name="ci",
    description="Pull-request workflow: `ml ci plan` checks, plans and posts one plan comment; `ml ci comment`.",
    commands=(Command("ci", "ml_framework.plugins.ci.cli:app",
                      "Pull requests: validate, format-check and plan, and post (or update) one plan comment."),),
)
