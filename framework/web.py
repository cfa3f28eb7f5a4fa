"""Small HTML helpers for the pages of `ml ui` (the core's and those plugins contribute). Everything is
escaped here, so a page built from these never renders a spec's text as markup."""

from __future__ import annotations

import json
from html import escape
from typing import Any, Iterable, Sequence

__all__ = ["esc", "table", "badge", "section", "definition_list", "code_block", "link", "Markup"]


class Markup(str):
    """HTML that is already safe: passed through by the helpers below, never escaped twice."""


def esc(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("–")
    if isinstance(value, float):
        value = f"{value:.4g}"
    return Markup(escape(str(value)))


def link(href: str, text: Any) -> Markup:
    return Markup(f'<a href="{escape(href)}">{esc(text)}</a>')


_TONES = {"good": "#dcfce7", "bad": "#fee2e2", "warn": "#fef3c7", "info": "#e0e7ff", "dim": "#f3f4f6"}


def badge(text: Any, tone: str = "dim") -> Markup:
    return Markup(f'<span class="badge" style="background:{_TONES.get(tone, _TONES["dim"])}">{esc(text)}</span>')


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "Nothing yet.",
          css_class: str = "") -> Markup:
    rows = list(rows)
    if not rows:
        return Markup(f'<p class="empty">{esc(empty)}</p>')
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return Markup(f'<table class="{escape(css_class)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def section(title: str, *parts: Any, anchor: str | None = None) -> Markup:
    ident = f' id="{escape(anchor)}"' if anchor else ""
    return Markup(f"<section{ident}><h2>{esc(title)}</h2>" + "".join(esc(p) for p in parts) + "</section>")


def definition_list(items: Iterable[tuple[str, Any]]) -> Markup:
    return Markup("<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>")


def code_block(value: Any) -> Markup:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str, sort_keys=True)
    return Markup(f"<pre>{escape(text)}</pre>")
