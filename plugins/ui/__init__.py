"""`ml ui`: a local, read-only web view of the project (plugins add pages through ``ui.page.<slug>`` services)."""
