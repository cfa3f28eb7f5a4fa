"""Terraform-like terminal rendering of a Plan. Reads the plan, never changes it.

    Resource actions are indicated with the following symbols:
      + create
      ~ update in-place
    -/+ destroy and then create replacement
      - destroy

    ml will perform the following actions:

      + featureview.txn_stats   create   ~ 2m 10s
          # new resource
    -/+ model.fraud             replace
          # because upstream featureview.txn_stats changed
          trainer.params.num_leaves: 31 → 63   # forces replacement

    Plan: 1 to add, 0 to change, 1 to replace, 0 to destroy.

``color=False`` gives plain text with no ANSI escape codes (what tests and pipes want).
"""

from __future__ import annotations

import json
import math
from io import StringIO
from typing import Any

from rich.console import Console
from rich.text import Text

from ml_framework.plan.model import CREATE, DELETE, NOOP, REPLACE, UPDATE, Change, Drift, Plan, PolicyCheck

__all__ = ["render_text", "render_summary", "render_policy_checks", "policy_lines", "format_value", "format_duration",
           "format_cost", "cost_line",
           "attributes", "SYMBOLS", "STYLES"]

# Symbols are right-aligned in three columns, as Terraform prints them.
SYMBOLS = {CREATE: "+", UPDATE: "~", REPLACE: "-/+", DELETE: "-", NOOP: "="}
STYLES = {CREATE: "green", UPDATE: "yellow", REPLACE: "magenta", DELETE: "red", NOOP: "dim"}
_LEGEND = {
    CREATE: "create",
    UPDATE: "update in-place",
    REPLACE: "destroy and then create replacement",
    DELETE: "destroy",
    NOOP: "no changes",
}
_ORDER = (CREATE, UPDATE, REPLACE, DELETE, NOOP)
_ARROW = "→"
_ELLIPSIS = "…"
VALUE_LIMIT = 60
ATTRIBUTE_LIMIT = 100  # a created resource's attribute values: the reviewer sees most of each
ATTRIBUTE_MIN = 30


def format_value(value: Any, limit: int = VALUE_LIMIT) -> str:
    """A compact, one-line, JSON-ish form of a value, truncated to ``limit`` characters."""
    try:
        text = json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):  # circular structures and the like
        text = repr(value)
    if limit and len(text) > limit:
        text = text[: max(limit - 1, 1)] + _ELLIPSIS
    return text


_IN_ADDRESS = ("kind", "name")  # already shown by the address


def attributes(spec: dict | None) -> list[tuple[str, Any]]:
    """A created resource's attributes as (dotted path, value), nested mappings flattened, in the spec's
    order; empty mappings and lists (defaults nobody wrote) and what the address shows are left out."""
    out: list[tuple[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif value not in ({}, [], None):
            out.append((prefix, value))

    for key, value in (spec or {}).items():
        if key not in _IN_ADDRESS:
            walk(str(key), value)
    return out


def format_duration(seconds: float | None) -> str | None:
    """``130`` -> ``"2m 10s"``; ``3720`` -> ``"1h 2m"``; ``0.3`` -> ``"<1s"``; None/negative/NaN -> None."""
    if seconds is None:
        return None
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return None
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        return None
    if seconds < 1:
        return "<1s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def render_summary(plan: Plan) -> str:
    """The one-line summary: ``Plan: 1 to add, 2 to change, 0 to replace, 1 to destroy.``"""
    counts = plan.summary()
    if plan.operation == "refresh-only":
        if plan.drift:
            return f"Drift: {_plural(len(plan.drift), 'object')} changed outside of ml."
        return "No changes. No objects have changed outside of ml."
    if plan.has_changes:
        moves = f", {counts['move']} to move" if counts.get("move") else ""
        moves += f", {counts['import']} to import" if counts.get("import") else ""
        return (
            f"Plan: {counts[CREATE]} to add, {counts[UPDATE]} to change, "
            f"{counts[REPLACE]} to replace, {counts[DELETE]} to destroy{moves}."
        )
    if plan.errors:
        return f"No changes planned, but {_plural(len(plan.errors), 'resource')} could not be planned."
    if plan.operation == "destroy":
        return "No changes. No objects need to be destroyed."
    return "No changes. Your infrastructure matches the specs."


def format_cost(cost: dict | None) -> str | None:
    """``$0.02 to apply, $70.08/month running`` (the parts that are known), or None."""
    if not cost:
        return None
    from ml_framework.cost import money

    currency = cost.get("currency", "USD")
    parts = []
    if cost.get("apply") is not None:
        parts.append(f"{money(cost['apply'], currency)} to apply")
    if cost.get("monthly") is not None:
        parts.append(f"{money(cost['monthly'], currency)}/month running")
    return ", ".join(parts) or None


def cost_line(plan: Plan) -> str | None:
    """The plan's total cost line, or None without pricing."""
    totals = plan.costs()
    if not totals:
        return None
    unknown = sum(1 for c in plan.pending() if c.action != DELETE and (not c.cost or c.cost.get("apply") is None))
    text = f"Estimated cost: {format_cost(totals) or 'unknown'} (ml.yaml pricing"
    if unknown:
        text += f"; {_plural(unknown, 'change')} unpriced: no duration estimate yet"
    return text + ")"


def _symbol(action: str) -> str:
    return SYMBOLS.get(action, "?").rjust(3)


def _legend(actions: set[str]) -> list[Text]:
    lines = [Text("Resource actions are indicated with the following symbols:")]
    for action in _ORDER:
        if action in actions:
            lines.append(Text.assemble((_symbol(action), STYLES[action]), " ", _LEGEND[action]))
    return lines


def _drift_lines(drift: tuple[Drift, ...]) -> list[Text]:
    lines = [
        Text("Objects have changed outside of ml", style="bold"),
        Text(""),
        Text("ml detected the following changes made outside of ml since the last apply:"),
        Text(""),
    ]
    width = max(len(d.address) for d in drift)
    for d in sorted(drift, key=lambda d: d.address):
        if not d.exists:
            lines.append(Text.assemble(("  -", "red"), " ", (d.address.ljust(width), "bold"), "   ",
                                       ("has been deleted", "red")))
            continue
        lines.append(Text.assemble(("  ~", "yellow"), " ", (d.address.ljust(width), "bold"), "   ",
                                   ("has changed", "yellow")))
        for path, recorded, actual in d.fields:
            lines.append(Text.assemble("      ", path, ": ", format_value(recorded), f" {_ARROW} ",
                                       format_value(actual)))
    lines.append(Text(""))
    lines.append(Text("Unless you have made equivalent changes to your specs, applying this plan may undo "
                      "or recreate these objects.", style="dim"))
    return lines


def _label(change: Change) -> tuple[str, str, str]:
    """(symbol, word, style) of a change's first line."""
    if change.held:
        return _symbol(change.action), "held", "yellow"
    if change.action == NOOP and change.moved_from:
        return " ->", f"moved from {change.moved_from}", "cyan"
    if change.action == NOOP and change.restate:
        return "  =", "record rewritten", "cyan"
    if change.imported and change.action == CREATE:
        return " <=", f"import {change.imported}", "cyan"
    word = change.action + (f" (moved from {change.moved_from})" if change.moved_from else "")
    return _symbol(change.action), word, STYLES.get(change.action, "")


def _change_lines(change: Change, width: int, line_width: int = 120) -> list[Text]:
    symbol, word, style = _label(change)
    head = Text.assemble((symbol, style), " ", (change.address.ljust(width), "bold"), "   ", (word, style))
    duration = format_duration(change.estimate_seconds)
    if duration:
        head.append(f"   ~ {duration}", style="dim")
    priced = format_cost(change.cost)
    if priced:
        head.append(f"   {priced}", style="dim")
    lines = [head]
    if change.held:
        lines.append(Text(f"      # {change.held}", style="yellow"))
        lines.append(Text(f"      # to apply it anyway: --retry {change.address}", style="dim"))
    for reason in change.reasons + ((change.restate,) if change.restate else ()):
        lines.append(Text(f"      # {reason}", style="dim"))
    if change.action == CREATE and not change.imported:
        shown = attributes(change.after)
        pad = max((len(path) for path, _ in shown), default=0)
        # values shortened to fit the line (a wrapped value reads as two attributes)
        limit = max(ATTRIBUTE_MIN, min(ATTRIBUTE_LIMIT, line_width - pad - 11))
        for path, value in shown:
            lines.append(Text.assemble("      ", ("+", "green"), f" {path.ljust(pad)} = ",
                                       format_value(value, limit)))
    for diff in change.fields:
        line = Text.assemble(
            "      ", diff.path, ": ", (format_value(diff.before), "red" if diff.before is not None else "dim"),
            f" {_ARROW} ", (format_value(diff.after), "green" if diff.after is not None else "dim"),
        )
        if diff.forces_replacement:
            line.append("   # forces replacement", style="bold red")
        lines.append(line)
    return lines


def render_text(plan: Plan, *, color: bool = True, width: int | None = None, show_noop: bool = False) -> str:
    """The whole plan as terminal text (ANSI-coloured when ``color``)."""
    buffer = StringIO()
    console = Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        width=width or 120,
        highlight=False,
        markup=False,
        emoji=False,
        record=True,
        legacy_windows=False,
    )
    shown = [c for c in plan.changes if show_noop or c.pending or c.held]
    hidden = len(plan.changes) - len(shown)
    blocks: list[list[Text]] = []

    if plan.drift:
        blocks.append(_drift_lines(plan.drift))

    if shown:
        blocks.append(_legend({c.action for c in shown}))
        addr_width = max(len(c.address) for c in shown)
        verb = "destroy the following resources" if plan.operation == "destroy" else "perform the following actions"
        section = [Text(f"ml will {verb}:")]
        if plan.targets:
            section.append(Text("Note: resource targeting is in effect (" + ", ".join(plan.targets) + ").",
                                style="yellow"))
        for change in shown:
            section.append(Text(""))
            section.extend(_change_lines(change, addr_width, width or 120))
        if hidden:
            section.append(Text(""))
            section.append(Text(f"({_plural(hidden, 'unchanged resource')} not shown)", style="dim"))
        total = sum(c.estimate_seconds or 0 for c in shown if format_duration(c.estimate_seconds))
        if total and len([c for c in shown if c.estimate_seconds]) > 1:
            section.append(Text(""))
            section.append(Text(f"Estimated time: ~ {format_duration(total)} (if run one after another)",
                                style="dim"))
        priced = cost_line(plan)
        if priced:
            section.append(Text(priced, style="dim"))
        blocks.append(section)

    if plan.errors:
        section = [Text("Errors", style="bold red"), Text("")]
        for issue in plan.errors:
            section.append(Text.assemble(("  ", ""), (issue.address, "bold red"), ": ", issue.message))
        blocks.append(section)

    if plan.policy_checks and plan.operation != "refresh-only":
        blocks.append(policy_lines(plan.policy_checks))

    summary_style = "bold" if plan.has_changes else "bold green"
    if plan.errors and not plan.has_changes:
        summary_style = "bold red"
    blocks.append([Text(render_summary(plan), style=summary_style)])

    if not color:
        fast = _plain_text(blocks, console.width)
        if fast is not None:
            return fast
    for i, block in enumerate(blocks):
        if i:
            console.print()
        for line in block:
            console.print(line)
    return console.export_text(styles=color)


_POLICY_MARKS = {"passed": ("✓", "green"), "overridden": ("!", "yellow"), "failed": ("✗", "red")}


def policy_lines(checks: tuple[PolicyCheck, ...] | list[PolicyCheck]) -> list[Text]:
    """``Policy checks: 3 passed, 1 failed`` then one line per rule, failures indented under theirs."""
    counts: dict[str, int] = {}
    for check in checks:
        counts[check.outcome] = counts.get(check.outcome, 0) + 1
    blocking = sum(1 for c in checks if c.blocking)
    head = "Policy checks: " + ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
    if blocking:
        head += f" — {blocking} mandatory blocks apply"
    if all(c.outcome == "passed" for c in checks):  # one line: the names say what was checked
        return [Text.assemble((head, "bold"), (f" ({', '.join(c.name for c in checks)})", "dim"))]
    lines = [Text(head, style="bold red" if blocking else "bold")]
    for check in checks:
        mark, style = _POLICY_MARKS[check.outcome]
        if check.outcome == "failed" and not check.blocking:
            style = "yellow"
        detail = {"passed": f"{_plural(check.checked, 'resource')} checked",
                  "failed": f"{len(check.failures)} of {check.checked} failed",
                  "overridden": f"{len(check.failures)} of {check.checked} failed; overridden by {check.overridden_by}"
                  }[check.outcome]
        lines.append(Text.assemble(("  ", ""), (mark, style), " ", (check.name, "bold"),
                                   f" ({check.level}) — {detail}", (f"   {check.source}", "dim")))
        for address, message in check.failures:
            lines.append(Text(f"      {address}: {message}", style=style))
    return lines


def render_policy_checks(checks, *, color: bool = False) -> str:
    """The policy block alone (``ml validate``, ``ml apply FILE``)."""
    return render_text_block(policy_lines(checks), color=color)


def render_text_block(lines: list[Text], *, color: bool) -> str:
    buffer = StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, color_system="standard" if color else None,
                      width=400, highlight=False, markup=False, emoji=False, legacy_windows=False)
    for line in lines:
        console.print(line)
    return buffer.getvalue().rstrip("\n")


def _plain_text(blocks: list[list[Text]], width: int) -> str | None:
    """What rich prints without colour when no line needs wrapping or tab expansion: the lines as they
    are. Skips rich's per-line layout, which dominates large plans. None when rich has to lay out."""
    out: list[str] = []
    for i, block in enumerate(blocks):
        if i:
            out.append("")
        for line in block:
            plain = line.plain
            if "\n" in plain or "\t" in plain or line.cell_len > width:
                return None
            out.append(plain)
    return "\n".join(out) + "\n"
