"""The ui plugin: `ml ui`, a local read-only web view. Its own pages are the core's views (graph,
resources, plan, history); other plugins add theirs as ``ui.page.<slug>`` services (contract.WebPage)."""

from ml_framework.contract import Command, Plugin

plugin = Plugin(
    name="ui",
    description="`ml ui`: a local, read-only web view of the graph, plan, history and what plugins add.",
    commands=(Command("ui", "ml_framework.plugins.ui.cli:ui",
                      "A local, read-only web view: graph, plan, history, models, deployments, monitors."),),
)
