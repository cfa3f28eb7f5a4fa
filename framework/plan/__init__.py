"""The plan as pure data, the planner that builds it, and the renderers that show it."""
