"""Tiny inline-SVG charts for the monitor report: no JavaScript, no CDN, a few hundred bytes each."""

from __future__ import annotations

import math
from typing import Sequence

from markupsafe import Markup, escape

__all__ = ["paired_bars", "line_chart", "COLORS"]

COLORS = ("#2563eb", "#f97316", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")
_REF, _CUR = "#94a3b8", "#2563eb"
LOG_FLOOR = 1e-16


def _f(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def paired_bars(labels: Sequence[str], reference: Sequence[float], current: Sequence[float], *, width: int = 320,
                height: int = 110, title: str = "") -> Markup:
    """Reference (grey) and current (blue) shares side by side per bin or category."""
    n = max(len(labels), 1)
    top = max([*reference, *current, 1e-9])
    plot_h = height - 18
    slot = (width - 4) / n
    bar = max(slot / 2 - 0.5, 0.5)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f"<title>{escape(title)}</title>"]
    for i, (label, ref, cur) in enumerate(zip(labels, reference, current)):
        x = 2 + i * slot
        for j, (value, color) in enumerate(((ref, _REF), (cur, _CUR))):
            h = plot_h * (value / top)
            parts.append(f'<rect x="{_f(x + j * bar)}" y="{_f(plot_h - h)}" width="{_f(bar)}" height="{_f(h)}" '
                         f'fill="{color}"><title>{escape(label)}: {"reference" if j == 0 else "current"} '
                         f"{value:.1%}</title></rect>")
    parts.append(f'<line x1="0" y1="{plot_h}" x2="{width}" y2="{plot_h}" stroke="#cbd5e1"/>')
    if labels:
        first, last = escape(str(labels[0]))[:14], escape(str(labels[-1]))[:14]
        parts.append(f'<text x="2" y="{height - 4}" font-size="9" fill="#475569">{first}</text>')
        if n > 1:
            parts.append(f'<text x="{width - 2}" y="{height - 4}" font-size="9" fill="#475569" '
                         f'text-anchor="end">{last}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(series: Sequence[tuple[str, Sequence[tuple[float, float | None]]]], *, width: int = 320,
               height: int = 110, log: bool = False, hline: float | None = None, hline_label: str = "",
               baselines: Sequence[float | None] = (), title: str = "", y_range: tuple[float, float] | None = None) -> Markup:
    """Lines of (x, y) points (x: seconds since the epoch). ``log``: log10 y axis (p-values; values below
    1e-16, zero included, are drawn at 1e-16); ``hline``: a dashed threshold; ``baselines``: one dotted
    line per series (validation metrics)."""
    if log:
        series = [(name, [(x, None if y is None else max(y, LOG_FLOOR)) for x, y in pts]) for name, pts in series]
    points = [(x, y) for _, pts in series for x, y in pts if y is not None]
    plot_w, plot_h, pad = width - 36, height - 16, 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f"<title>{escape(title)}</title>"]
    if not points:
        parts.append(f'<text x="4" y="{height / 2}" font-size="10" fill="#64748b">no data yet</text></svg>')
        return Markup("".join(parts))

    def ty(y: float) -> float:
        return math.log10(max(y, 1e-300)) if log else y

    xs = [x for x, _ in points]
    extra = [v for v in [hline, *baselines] if v is not None and (not log or v > 0)]
    ys = [ty(y) for _, y in points] + [ty(v) for v in extra]
    x0, x1 = min(xs), max(xs)
    y0, y1 = y_range if y_range else (min(ys), max(ys))
    if log:
        y1 = max(y1, 0.0)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def px(x: float) -> float:
        return 34 + (plot_w - pad) * ((x - x0) / (x1 - x0) if x1 > x0 else 0.5)

    def py(y: float) -> float:
        return pad + (plot_h - 2 * pad) * (1 - (ty(y) - y0) / (y1 - y0))

    top_label = f"1e{int(round(y0))}" if log else f"{y0:.3g}"
    parts.append(f'<text x="31" y="{plot_h}" font-size="9" fill="#475569" text-anchor="end">{top_label}</text>')
    parts.append(f'<text x="31" y="10" font-size="9" fill="#475569" text-anchor="end">'
                 f'{"1" if log and y1 >= 0 else f"{(10 ** y1 if log else y1):.3g}"}</text>')
    parts.append(f'<line x1="34" y1="{plot_h}" x2="{width}" y2="{plot_h}" stroke="#cbd5e1"/>')
    if hline is not None and (not log or hline > 0):
        y = _f(py(hline))
        parts.append(f'<line x1="34" y1="{y}" x2="{width}" y2="{y}" stroke="#dc2626" stroke-dasharray="4 3">'
                     f"<title>{escape(hline_label)}</title></line>")
    for i, (name, pts) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        if i < len(baselines) and baselines[i] is not None:
            y = _f(py(baselines[i]))
            parts.append(f'<line x1="34" y1="{y}" x2="{width}" y2="{y}" stroke="{color}" stroke-dasharray="1 3">'
                         f"<title>{escape(name)} validation {baselines[i]:.4g}</title></line>")
        good = [(x, y) for x, y in pts if y is not None and (not log or y > 0)]
        if not good:
            continue
        path = " ".join(f"{_f(px(x))},{_f(py(y))}" for x, y in good)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}">'
                     f"<title>{escape(name)}</title></polyline>")
        if len(good) == 1:
            x, y = good[0]
            parts.append(f'<circle cx="{_f(px(x))}" cy="{_f(py(y))}" r="2.5" fill="{color}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))
