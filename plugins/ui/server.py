"""The HTTP side of `ml ui`: routing, the page shell, errors. Read-only: GET and HEAD only, each request
reads state afresh (so the view follows applies made meanwhile) and closes it again."""

from __future__ import annotations

import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from ml_framework.contract import UI_PAGE_PREFIX
from ml_framework.errors import MLError
from ml_framework.web import Markup, esc

__all__ = ["UIApp", "serve", "Response"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#111827;background:#f9fafb}
header{background:#111827;color:#f9fafb;padding:10px 20px;display:flex;gap:18px;align-items:center;flex-wrap:wrap}
header a{color:#e5e7eb;text-decoration:none}header a.active{color:#fff;font-weight:600;border-bottom:2px solid #60a5fa}
header .project{font-weight:700;margin-right:12px}
main{padding:16px 20px;max-width:1400px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px;margin-bottom:16px;overflow-x:auto}
h1{font-size:1.4rem;margin:4px 0 14px}h2{font-size:1.1rem;margin:2px 0 10px}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #f3f4f6;vertical-align:top}
th{background:#f9fafb;font-weight:600}pre{background:#f3f4f6;padding:10px;border-radius:6px;overflow-x:auto;font-size:.85rem}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.8rem;margin-right:4px}
.empty{color:#6b7280}.error{background:#fee2e2;border-color:#fca5a5}.muted{color:#6b7280;font-size:.85rem}
dl{display:grid;grid-template-columns:max-content auto;gap:4px 14px;margin:0}dt{color:#6b7280}dd{margin:0}
"""


class Response:
    def __init__(self, status: int, body: str, content_type: str = "text/html; charset=utf-8"):
        self.status, self.body, self.content_type = status, body, content_type


class UIApp:
    """Routes a GET path to a page: the core views (pages.py) and every ``ui.page.<slug>`` service."""

    def __init__(self, project, registry, *, env: str | None = None):
        self.project, self.registry, self.env = project, registry, env

    def contributed(self, services) -> dict[str, str]:
        """slug -> service name, for the pages plugins contribute."""
        return {name[len(UI_PAGE_PREFIX):]: name for name in services.names() if name.startswith(UI_PAGE_PREFIX)}

    def handle(self, raw_path: str) -> Response:
        from . import pages

        parsed = urllib.parse.urlsplit(raw_path)
        path = urllib.parse.unquote(parsed.path).rstrip("/") or "/"
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        if path in ("/healthz", "/readyz"):
            return Response(200, "ok\n", "text/plain; charset=utf-8")
        store = self.project.open_state()
        try:
            services = self.registry.services(state=store)
            extra = self.contributed(services)
            nav = [("/", "Overview"), ("/plan", "Plan"), ("/history", "History")]
            for slug in sorted(extra):
                nav.append((f"/{slug}", self._title(services, extra[slug], slug)))
            core: dict[str, Callable[..., Any]] = {"/": pages.overview, "/plan": pages.plan, "/history": pages.history}
            try:
                if path in core:
                    title, body = core[path](self, store, query)
                elif path.startswith("/resource/"):
                    title, body = pages.resource(self, store, path[len("/resource/"):])
                else:
                    slug, _, rest = path[1:].partition("/")
                    if slug not in extra:
                        raise LookupError(path)
                    page = services.get(extra[slug])
                    body = page.render(f"/{rest}" if rest else "", query)
                    if body.lstrip()[:9].upper() == "<!DOCTYPE":
                        return Response(200, body)
                    title = page.title
            except LookupError:
                return Response(404, self.shell(nav, path, "Not found",
                                                Markup(f"<section><p>No page at {esc(path)}.</p></section>")))
            except MLError as exc:
                return Response(500, self.shell(nav, path, "Cannot show this page", Markup(
                    f'<section class="error"><pre>{esc(str(exc))}</pre></section>')))
            except Exception as exc:  # noqa: BLE001 - a broken page must not take the view down
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                return Response(500, self.shell(nav, path, "This page failed", Markup(
                    f'<section class="error"><p>An error in the page (a bug: please report it).</p>'
                    f"<pre>{esc(detail)}</pre></section>")))
            return Response(200, self.shell(nav, path, title, body))
        finally:
            store.close()

    @staticmethod
    def _title(services, name: str, slug: str) -> str:
        try:
            return str(services.get(name).title)
        except Exception:  # noqa: BLE001 - listed all the same; its page explains the failure
            return slug.capitalize()

    def shell(self, nav, path: str, title: str, body: str) -> str:
        project = self.project.name or self.project.root.name
        links = "".join(
            f'<a href="{esc(href)}"{" class=active" if (href == path or (href != "/" and path.startswith(href + "/"))) else ""}>'
            f"{esc(label)}</a>" for href, label in nav)
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)} · {esc(project)} · ml'
                f'</title><meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style>'
                f'</head><body><header><span class="project">ml · {esc(project)}</span>{links}</header>'
                f"<main><h1>{esc(title)}</h1>{body}</main></body></html>")


def serve(project, registry, *, host: str = "127.0.0.1", port: int = 8470, env: str | None = None) -> ThreadingHTTPServer:
    """A started-but-not-serving HTTP server for the view (``serve_forever`` runs it)."""
    app = UIApp(project, registry, env=env)

    class Handler(BaseHTTPRequestHandler):
        server_version = "ml-ui"

        def log_message(self, *args):  # quiet: a local view, not a service
            pass

        def _send(self, response: Response, head: bool = False) -> None:
            data = response.body.encode("utf-8")
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def do_GET(self):
            self._send(app.handle(self.path))

        def do_HEAD(self):
            self._send(app.handle(self.path), head=True)

        def _refuse(self):
            self._send(Response(405, "read-only: GET only\n", "text/plain; charset=utf-8"))

        do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
