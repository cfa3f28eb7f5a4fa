"""`ml ui` without a browser: routing, the core's views, pages contributed by plugins, escaping and the
read-only server. (tests/integration/test_clinic_example.py renders every page in Chromium with real data.)"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import pytest

from ml_framework.contract import Plugin
from ml_framework.testing import InMemoryProvider
from ml_framework.testing.harness import Harness
from memory_specs import feature_specs, write_specs

SPECS = feature_specs(entity_description="<script>alert(1)</script> a card holder")


class ExtraPage:
    """A third party's page: listed in the navigation, served under its slug."""

    title = "Extra things"

    def render(self, path, query):
        if path == "/boom":
            raise RuntimeError("a bug in the page")
        if path not in ("", "/x"):
            raise LookupError(path)
        return f"<p>extra page{path} q={query.get('q', '')}</p>"


def extra_page(services):
    return ExtraPage()


EXTRA = Plugin(name="extra", services={"ui.page.extra": "test_ui:extra_page"})


@pytest.fixture
def harness(tmp_path):
    write_specs(tmp_path, SPECS)
    h = Harness(tmp_path, {"memory": InMemoryProvider()}, plugins=[EXTRA])
    yield h
    h.close()


@pytest.fixture
def app(harness):
    from ml_framework.plugins.ui.server import UIApp

    return UIApp(harness.project, harness.registry)


def test_overview_draws_the_graph_with_what_state_holds(harness, app):
    before = app.handle("/")
    assert before.status == 200 and "Nothing applied yet" in before.body
    assert 'data-address="featureview.txn_stats"' in before.body and "(planned)" in before.body
    assert harness.apply().ok
    after = app.handle("/").body
    assert "featureview.txn_stats (applied)" in after and 'href="/resource/featureview.txn_stats"' in after
    for nav in ('href="/plan"', 'href="/history"', 'href="/models"', 'href="/deployments"', 'href="/monitors"',
                'href="/extra"'):
        assert nav in after  # the core's views, the built-in plugins' pages and a third party's


def test_plan_history_and_resource_pages_show_real_data(harness, app):
    plan = app.handle("/plan").body
    assert "Plan: 3 to add" in plan and "entity.customer" in plan
    assert harness.apply().ok
    assert "No changes: the world matches the specs." in app.handle("/plan").body
    history = app.handle("/history").body
    assert "3 succeeded" in history and "apply" in history
    resource = app.handle("/resource/entity.customer")
    assert resource.status == 200 and "Runs that touched it" in resource.body
    assert "<script>alert(1)</script>" not in resource.body and "&lt;script&gt;" in resource.body  # escaped


def test_contributed_pages_unknown_paths_and_failing_pages(app):
    assert "extra page/x q=1" in app.handle("/extra/x?q=1").body
    assert "<title>Extra things" in app.handle("/extra").body
    assert app.handle("/extra/nope").status == 404 and app.handle("/nowhere").status == 404
    failed = app.handle("/extra/boom")
    assert failed.status == 500 and "a bug in the page" in failed.body and 'href="/plan"' in failed.body
    models = app.handle("/models")
    assert models.status == 200 and "No models yet" in models.body


def test_the_server_answers_get_and_refuses_writes(harness):
    from ml_framework.plugins.ui.server import serve

    server = serve(harness.project, harness.registry, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/") as page:
            assert page.status == 200 and "default-src 'none'" in page.headers["Content-Security-Policy"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(base + "/plan", data=b"{}", method="POST"))
        assert refused.value.code == 405
    finally:
        server.shutdown()
        server.server_close()


def test_the_graph_svg_places_dependencies_left_of_their_dependents():
    import re

    from ml_framework.graph_export import to_svg

    svg = to_svg([("a.x", "a", ()), ("b.y", "b", ("a.x",)), ("c.z", "c", ("b.y", "a.x"))],
                 status={"a.x": "applied"})
    xs = {m.group(1): int(m.group(2)) for m in re.finditer(r'data-address="([^"]+)".*?<rect x="(\d+)"', svg)}
    assert xs["a.x"] < xs["b.y"] < xs["c.z"]
    assert svg.count("marker-end=") == 3 and 'stroke="#15803d"' in svg  # three edges; the applied one outlined green


def test_the_features_page_shows_views_their_contracts_and_on_demand_expressions(tmp_path):
    from ml_framework.plugins.ui.server import UIApp

    odfv = ("kind: OnDemandFeatureView\nname: ratios\nbackend: memory\nrequest: {amount: float64}\n"
            "views: [txn_stats]\nfeatures:\n  amount_vs_mean: {dtype: float64, expr: \"amount / txn_stats.amount_mean_7d\"}\n")
    write_specs(tmp_path, SPECS + "---\n" + odfv)
    h = Harness(tmp_path, {"memory": InMemoryProvider()}, plugins=[EXTRA])
    try:
        assert h.apply().ok
        page = UIApp(h.project, h.registry).handle("/features")
        assert page.status == 200
        assert "featureview.txn_stats" in page.body and "amount_mean_7d" in page.body and "float32" in page.body
        assert "ondemandfeatureview.ratios (computed per request)" in page.body
        assert "<code>amount / txn_stats.amount_mean_7d</code>" in page.body and "amount (float64)" in page.body
    finally:
        h.close()
