"""The plan as GitHub-flavoured Markdown, for a pull-request comment. Reads the plan, never changes it."""

from __future__ import annotations

import html
import re

from ml_framework.plan.model import CREATE, DELETE, NOOP, REPLACE, UPDATE, Plan
from ml_framework.plan.render_text import attributes, cost_line, format_cost, format_duration, format_value, render_summary

__all__ = ["render_markdown", "md_escape", "md_code", "ACTION_EMOJI"]

ACTION_EMOJI = {CREATE: "🟢", UPDATE: "🟡", REPLACE: "🟣", DELETE: "🔴", NOOP: "⚪"}
_ACTION_SYMBOL = {CREATE: "+", UPDATE: "~", REPLACE: "-/+", DELETE: "-", NOOP: "="}
_MD_SPECIAL = re.compile(r"([\\`|*_\[\]<>])")


def md_escape(text: object) -> str:
    """Plain text safe inside a Markdown table cell: ``|`` and backticks (and friends) escaped, one line."""
    text = " ".join(str(text).splitlines())
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(text: object) -> str:
    """A code span that holds ``text`` verbatim, even with backticks in it; ``|`` escaped for tables.

    GFM tables split cells on ``|`` even inside code spans; ``\\|`` there renders as ``|``.
    """
    text = " ".join(str(text).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"


def _action_cell(action: str) -> str:
    return f"{ACTION_EMOJI.get(action, '❔')} `{_ACTION_SYMBOL.get(action, '?')}`"


_POLICY_ICONS = {"passed": "✅", "overridden": "⚠️", "failed": "❌"}


def _policy_section(plan: Plan) -> list[str]:
    """A table of the rules; failures listed under it. Collapsed when every rule passed."""
    checks = plan.policy_checks
    blocking = [c for c in checks if c.blocking]
    failed = [c for c in checks if c.failures]
    title = (f"🛑 Policy checks: {len(blocking)} mandatory failed — apply is blocked" if blocking else
             f"Policy checks: {sum(1 for c in checks if not c.failures)} of {len(checks)} passed"
             + (f", {len(failed)} failed or overridden" if failed else ""))
    table = ["| | Policy | Level | Checked | Result |", "|---|---|---|---|---|"]
    for c in checks:
        icon = _POLICY_ICONS[c.outcome] if c.outcome != "failed" or c.blocking else "⚠️"
        result = {"passed": "passed", "failed": f"{len(c.failures)} failed",
                  "overridden": f"{len(c.failures)} failed, overridden by {md_escape(c.overridden_by)}"}[c.outcome]
        table.append(f"| {icon} | {md_code(c.name)} | {c.level} | {c.checked} | {result} |")
    details = []
    for c in failed:
        for address, message in c.failures:
            details.append(f"- {md_code(c.name)} ({c.level}): {md_code(address)}: {md_escape(message)}")
    if not failed:
        return [f"<details><summary>{html.escape(title)}</summary>", "", *table, "", "</details>", ""]
    return [f"#### {md_escape(title)}", "", *table, "", *details, ""]


def render_markdown(plan: Plan, *, show_noop: bool = False) -> str:
    """A heading with the summary, a table of changes, drift/errors sections and per-resource details."""
    summary = render_summary(plan)
    if plan.errors:
        icon = "❌"
    elif plan.blocked_by_policy():
        icon = "🛑"
    elif plan.operation == "refresh-only" and plan.drift:
        icon = "⚠️"
    elif plan.has_changes:
        icon = "📝"
    else:
        icon = "✅"
    out: list[str] = [f"### {icon} {md_escape(summary)}", ""]

    meta = []
    if plan.operation == "destroy":
        meta.append("**destroy plan**")
    if plan.env:
        meta.append(f"env {md_code(plan.env)}")
    if plan.targets:
        meta.append("targets " + ", ".join(md_code(t) for t in plan.targets))
    priced = cost_line(plan)
    if priced:
        meta.append(md_escape(priced))
    meta.append(f"plan {md_code(plan.plan_id)}")
    meta.append(f"state serial {plan.serial}")
    out += [" · ".join(meta), ""]

    if plan.drift:
        out += ["#### ⚠️ Objects have changed outside of ml", ""]
        for d in sorted(plan.drift, key=lambda d: d.address):
            if not d.exists:
                out.append(f"- {md_code(d.address)} has been deleted")
                continue
            out.append(f"- {md_code(d.address)} has changed")
            for path, recorded, actual in d.fields:
                out.append(f"  - {md_code(path)}: {md_code(format_value(recorded))} → "
                           f"{md_code(format_value(actual))}")
        out.append("")

    if plan.errors:
        out += ["#### ❌ Errors", ""]
        for issue in plan.errors:
            out.append(f"- {md_code(issue.address)}: {md_escape(issue.message)}")
        out.append("")

    if plan.policy_checks and plan.operation != "refresh-only":
        out += _policy_section(plan)

    shown = [c for c in plan.changes if show_noop or c.pending or c.held]
    if shown:
        out += ["| | Resource | Action | Why |", "|---|---|---|---|"]
        for c in shown:
            why = "; ".join(md_escape(r) for r in ((c.held,) if c.held else ()) + tuple(c.reasons)
                            + ((c.restate,) if c.restate else ())) or "—"
            action = "held" if c.held else md_escape(c.action)
            if c.moved_from:
                action = (f"moved from {md_code(c.moved_from)}" if c.action == NOOP
                          else f"{action} (moved from {md_code(c.moved_from)})")
            elif c.restate:
                action = "record rewritten"
            elif c.imported:
                action = f"import {md_code(c.imported)}"
            duration = format_duration(c.estimate_seconds)
            if duration:
                action += f" (~ {duration})"
            priced = format_cost(c.cost)
            if priced:
                action += f" · {md_escape(priced)}"
            out.append(f"| {_action_cell(c.action)} | {md_code(c.address)} | {action} | {why} |")
        out.append("")

        for c in shown:
            created = attributes(c.after) if c.action == CREATE else []
            if created:  # what the new resource will be, collapsed: a reviewer opens the ones that matter
                out += [f"<details><summary><code>{html.escape(c.address)}</code> — create "
                        f"({len(created)} attribute{'s' if len(created) != 1 else ''})</summary>", "",
                        "| Attribute | Value |", "|---|---|"]
                out += [f"| {md_code(path)} | {md_code(format_value(value, 0))} |" for path, value in created]
                out += ["", "</details>", ""]
            if not c.fields:
                continue
            label = f"<code>{html.escape(c.address)}</code> — {html.escape(c.action)}"
            forced = sum(1 for f in c.fields if f.forces_replacement)
            if forced:
                label += f" ({forced} field{'s' if forced != 1 else ''} force{'' if forced != 1 else 's'} replacement)"
            out += [f"<details><summary>{label}</summary>", "",
                    "| Field | Before | After | |", "|---|---|---|---|"]
            for f in c.fields:
                mark = "⚠️ forces replacement" if f.forces_replacement else ""
                out.append(f"| {md_code(f.path)} | {md_code(format_value(f.before))} | "
                           f"{md_code(format_value(f.after))} | {mark} |")
            out += ["", "</details>", ""]

    return "\n".join(out).rstrip("\n") + "\n"
