"""The monitoring domain plugin: the Monitor kind, `ml monitor`, and what every drift backend shares
(windows, references, ground truth, reports, actions). Drift backends implement the ``detector`` block."""

from ml_framework.contract import Command, Kind, Plugin

from .capabilities import DRIFT_CHECKER

plugin = Plugin(
    name="monitoring",
    description="Drift and performance monitors, `ml monitor`.",
    kinds=(Kind("Monitor", plural="monitors", schema="ml_framework.plugins.monitoring.kinds:Monitor",
                backend_block="detector", references={"deployment": "Deployment"}, style="watch"),),
    commands=(Command("monitor", "ml_framework.plugins.monitoring.cli:app",
                      "Drift and performance monitors: run, watch, report, history, metrics."),),
    capabilities=(DRIFT_CHECKER,),
    services={"monitor_gauges": "ml_framework.plugins.monitoring.services:monitor_gauges",
              "ui.page.monitors": "ml_framework.plugins.monitoring.ui:monitors_page"},
)
