"""The serving domain plugin: the Deployment kind, `ml status` and `ml rollback`, the rollout engine and
the prediction log. Serving backends (bentoml) implement the ``serving`` block."""

from ml_framework.contract import Command, Kind, Plugin

plugin = Plugin(
    name="serving",
    description="Deployments, rollouts and their analysis, `ml status`, `ml rollback`.",
    kinds=(Kind("Deployment", plural="deployments", schema="ml_framework.plugins.serving.kinds:Deployment",
                backend_block="serving", style="service"),),
    checks=("ml_framework.plugins.serving.spec_checks:check_deployments",),
    commands=(
        Command("status", "ml_framework.plugins.serving.cli:status",
                "What serves: process, health, versions and traffic of each deployment."),
        Command("rollback", "ml_framework.plugins.serving.cli:rollback",
                "Switch a deployment back to an earlier revision, instantly."),
        Command("decisions", "ml_framework.plugins.serving.decisions:app",
                "The decision log: one answered request by its request id, or a time range."),
    ),
    services={"ui.page.deployments": "ml_framework.plugins.serving.ui:deployments_page"},
)
