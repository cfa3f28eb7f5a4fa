"""`ml models`: the model registry — list, show, compare, promote, rollback, sweep.

References: ``fraud`` (its production version), ``fraud@candidate``, ``fraud:v3``. Moving an alias is
how promotion and rollback work; it is done under the state lock, so it never races an apply.
``sweep`` trains one version per combination of Hydra sweep overrides
(``models.fraud.trainer.params.num_leaves=15,31,63``) and points ``candidate`` at the best.
The commands read the registry (registry.py); training goes through the model's backend
(its ``train_candidate`` hook), so this module imports no plugin.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import typer

__all__ = ["app"]

_STATUS_STYLE = {"accepted": "green", "rejected": "red", "deleted": "dim"}
_GATE_MARK = {"passed": "[green]✓[/green]", "failed": "[red]✗[/red]", "skipped": "[yellow]–[/yellow]",
              "inconclusive": "[red]?[/red]"}


def _fmt(value: Any, digits: int = 4) -> str:
    from .card import fmt

    return fmt(value, digits)


def _reference_line(info) -> str:
    """What was saved for monitors at training time (lineage ``reference``)."""
    if not info:
        return "–"
    sampled = f", a seeded sample of {info.get('total', 0):,}" if info.get("sampled") else ""
    return f"{info.get('rows', 0):,} training rows with predictions{sampled} ({_size(info.get('bytes'))})"


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _esc(text: Any) -> str:
    from rich.markup import escape

    return escape(str(text))


def _gates_cell(gates) -> str:
    if not gates:
        return "–"
    counts: dict[str, int] = {}
    for gate in gates:
        counts[gate.get("status", "?")] = counts.get(gate.get("status", "?"), 0) + 1
    parts = [f"{_GATE_MARK.get(s, s)} {n}" for s, n in sorted(counts.items())]
    return " ".join(parts)


def _build(project_and_registry, handles_errors, console, fail, split_args) -> typer.Typer:  # noqa: C901
    models_app = typer.Typer(help="The model registry: versions, lineage, aliases (promote / rollback), sweeps.",
                             no_args_is_help=True)

    def open_registry():
        from .registry import ModelRegistry

        project, _ = project_and_registry()
        store = project.open_state()
        return project, store, ModelRegistry.for_store(store)

    # -- list ---------------------------------------------------------------------------------------
    @models_app.command("list")
    @handles_errors
    def list_(model: Optional[str] = typer.Argument(None, help="Only this model."),
              all_: bool = typer.Option(False, "--all", "-a", help="Include deleted versions."),
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
        """Every recorded version: status, aliases, primary metric, gates."""
        from dataclasses import asdict

        _, store, registry = open_registry()
        try:
            if model is not None:
                registry.require_model(model)
            versions = registry.versions(model, include_deleted=all_)
        finally:
            store.close()
        if as_json:
            typer.echo(json.dumps([asdict(v) for v in versions], indent=2, default=str))
            return
        if not versions:
            console().print("No model versions recorded yet. Train one with `ml apply`.")
            return
        from rich.table import Table

        from rich import box

        out = console()
        wide = out.width >= 110  # the BentoML tag only fits a wide terminal (`ml models show` always has it)
        table = Table(title="Model versions", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("model", "version", "status", "aliases", "metric", "gates", "created"):
            table.add_column(column, no_wrap=column not in ("model", "aliases"),
                             min_width=10 if column == "aliases" else None)
        if wide:
            table.add_column("bentoml tag", no_wrap=True)
        for v in versions:
            metric = v.primary_metric
            value = f"{metric} {_fmt(v.metrics.get(metric))}" if metric else "–"
            row = [_esc(v.model), v.label, f"[{_STATUS_STYLE.get(v.status, '')}]{v.status}[/]",
                   ", ".join(v.aliases) or "", value, _gates_cell(v.gates), v.created[:16].replace("T", " ")]
            table.add_row(*row, *([_esc(v.bentoml_tag or "–")] if wide else []))
        out.print(table)

    # -- show ---------------------------------------------------------------------------------------
    @models_app.command("show")
    @handles_errors
    def show(ref: str = typer.Argument(..., help="fraud (production), fraud@candidate or fraud:v3"),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
        """One version: metrics, gate results, slices and its full lineage."""
        from dataclasses import asdict

        _, store, registry = open_registry()
        try:
            version = registry.resolve(ref)
            events = registry.events(version.model, limit=10)
        finally:
            store.close()
        if as_json:
            typer.echo(json.dumps(asdict(version), indent=2, default=str))
            return
        _show(console(), version, events)

    # -- card ---------------------------------------------------------------------------------------
    @models_app.command("card")
    @handles_errors
    def card(ref: str = typer.Argument(..., help="fraud:v3, fraud@production or fraud"),
             fmt: str = typer.Option("markdown", "--format", "-f", help="markdown | html | json"),
             out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write it here instead of printing it.")):
        """The model card of one version (Model Card Toolkit sections): details and approvals, parameters,
        held-out metrics with 95 % intervals, slices, gates, fairness, robustness, importance,
        considerations, data lineage. Also written under .ml/cards/ (Markdown and HTML with plots)."""
        from .card import card_data, render_html, render_markdown, write_card
        from .ui import monitors_of

        if fmt not in ("markdown", "md", "html", "json"):
            fail(f"--format {fmt!r}: expected markdown, html or json")
        project, store, registry = open_registry()
        try:
            version = registry.resolve(ref)
            data = card_data(version, registry.events(version.model, limit=200), monitors=monitors_of(store, version.model),
                             serving_cost=_serving_costs(project, store, version))
        finally:
            store.close()
        md_path, html_path = write_card(project.root, data)
        text = (json.dumps(data, indent=2, default=str) + "\n" if fmt == "json" else
                render_html(data) if fmt == "html" else render_markdown(data))
        if out is not None:
            out.write_text(text, encoding="utf-8")
            console(stderr=True).print(f"wrote {out} (and {md_path.relative_to(project.root)}, "
                                       f"{html_path.relative_to(project.root)})")
        else:
            typer.echo(text, nl=False)

    # -- compare ------------------------------------------------------------------------------------
    @models_app.command("compare")
    @handles_errors
    def compare(a: str = typer.Argument(..., help="fraud:v2, fraud@production..."),
                b: str = typer.Argument(..., help="fraud:v3, or just v3 (same model as the first)"),
                as_json: bool = typer.Option(False, "--json", help="Print JSON.")):
        """Two versions side by side: metrics (with deltas), params, features, data."""
        _, store, registry = open_registry()
        try:
            first = registry.resolve(a)
            second = registry.resolve(b if any(ch in b for ch in ":@") or not _looks_like_version(b)
                                      else f"{first.model}:{b}")
        finally:
            store.close()
        diff = _compare(first, second)
        if as_json:
            typer.echo(json.dumps(diff, indent=2, default=str))
            return
        _render_compare(console(), first, second, diff)

    # -- promote / rollback -----------------------------------------------------------------------------
    @models_app.command("promote")
    @handles_errors
    def promote(model: str = typer.Argument(..., help="The model name."),
                version: str = typer.Argument(..., help="The version to promote, e.g. v3."),
                alias: str = typer.Option("production", "--alias", help="candidate, production or previous."),
                reason: Optional[str] = typer.Option(None, "--reason", help="Why (kept in the alias history)."),
                now: bool = typer.Option(False, "--now", help="Move production at once, even while deployments "
                                                               "serve the model (default: they roll it out first).")):
        """Point an alias (default: production) at an accepted version. The old production becomes previous.

        While deployments follow the model, production is *released*: the next `ml apply` rolls the version
        out and production moves when that rollout passes (--now moves it at once)."""
        from ml_framework.locking import held_lock

        _, store, registry = open_registry()
        try:
            with held_lock(store, "models promote"):
                old, new = registry.promote(model, version, alias=alias, reason=reason, now=now)
        finally:
            store.close()
        before = f"v{old}" if old is not None else "none"
        if old == new.version:
            console().print(f"{model}@{alias} is already {new.label}; nothing changed.")
            return
        if alias == "production" and "release" in new.aliases:
            followers = registry.followers(model)
            console().print(f"[green]{model}: {new.label} is released[/green]: the next `ml apply` rolls it out "
                            f"through {', '.join(followers)}; production ({before}) moves to {new.label} when that "
                            "rollout passes (--now moves it at once)")
            return
        console().print(f"[green]{model}@{alias}: {before} → {new.label}[/green]"
                        + (f" (previous → {before})" if alias == "production" and old is not None else ""))

    @models_app.command("sweep")
    @handles_errors
    def sweep(args: Optional[List[str]] = typer.Argument(None, help=(
                  "Overrides with Hydra sweep syntax, e.g. models.fraud.trainer.params.num_leaves=15,31,63 "
                  "(also range(a,b), choice(...)); plus env=NAME, a spec path and plain overrides.")),
              max_candidates: int = typer.Option(32, "--max", min=1, help="Refuse sweeps larger than this.")):
        """Train one version per combination of sweep values; record each; make the best passing one `candidate`.

        Every candidate is trained like `ml apply` would (same data, split and gates) and recorded in the
        registry with its overrides; no alias moves until all are done, then `candidate` points at the
        best by the model's primary metric. State and `production` are untouched: promote the winner
        with `ml models promote`, and put its params into the spec to make it the declared model.
        """
        import itertools
        import uuid

        from ml_framework.contract import ApplyContext, ApplyRequest
        from ml_framework.errors import MLError, SpecError
        from ml_framework.locking import held_lock
        from ml_framework.operations import load_specs
        from ml_framework.plan.planner import to_resource
        from .registry import ACCEPTED, ModelRegistry

        if split_args is None:  # pragma: no cover - wiring
            fail("ml models sweep is not available in this build")
        spec_dir, env, overrides = split_args(args)
        axes, fixed = _sweep_axes(overrides)
        if not axes:
            raise SpecError("no sweep override given",
                            hint="e.g. ml models sweep models.fraud.trainer.params.num_leaves=15,31,63")
        names = {key.split(".")[1] for key, _ in axes if key.startswith("models.") and key.count(".") >= 2}
        if len(names) != 1 or any(not key.startswith(f"models.{next(iter(names))}.") for key, _ in axes):
            raise SpecError("sweep overrides must all change one model: models.NAME.…",
                            hint="sweep one model at a time")
        model = next(iter(names))
        combos = [list(c) for c in itertools.product(*(values for _, values in axes))]
        if len(combos) > max_candidates:
            raise SpecError(f"the sweep has {len(combos)} candidates (more than --max {max_candidates})")
        project, registry = project_and_registry(spec_dir)
        store = project.open_state()
        out = console()
        sweep_id = uuid.uuid4().hex[:8]
        rows: list[tuple[list[str], Any, str | None]] = []
        try:
            reg = ModelRegistry.for_store(store)
            services = registry.services(state=store)
            with held_lock(store, "models sweep"):
                for i, combo in enumerate(combos, 1):
                    loaded = load_specs(project, registry, env=env, overrides=fixed + combo)
                    address = f"model.{model}"
                    if address not in loaded.graph.nodes:
                        raise SpecError(f"no model named {model!r} in the specs")
                    node = loaded.graph.nodes[address]
                    provider = registry.get(node.backend)
                    train = provider.train_candidate if registry.capable(node.backend, "train_candidate") else None
                    if train is None:
                        raise MLError(f"backend {node.backend!r} does not support sweeps")
                    missing = [d for d in node.depends_on if store.get(d) is None]
                    if missing:
                        raise MLError(f"{address} needs {', '.join(missing)} applied first",
                                      hint=f"ml apply --target {missing[0]}")
                    upstream = {d: store.get(d) for d in node.depends_on}
                    out.print(f"[bold]candidate {i}/{len(combos)}[/bold]: {_esc(' '.join(combo))}")
                    ctx = ApplyContext(address=address, project_dir=project.root, env=env, upstream=upstream,
                                       on_progress=lambda a, m, f: out.print(f"  [dim]{_esc(m)}[/dim]"),
                                       services=services, state=store, project=project)
                    request = ApplyRequest("update", to_resource(loaded.graph, address), store.get(address))
                    try:
                        version = train(request, ctx, {"id": sweep_id, "overrides": combo})
                        rows.append((combo, version, None))
                    except MLError as exc:  # one candidate failing does not stop the sweep
                        rows.append((combo, None, str(exc)))
                        out.print(f"  [red]failed: {_esc(exc)}[/red]")
                passing = [v for _, v, _ in rows if v is not None and v.status == ACCEPTED
                           and isinstance(v.metrics.get(v.primary_metric), (int, float))]
                best = None
                if passing:
                    best = max(passing, key=lambda v: v.metrics[v.primary_metric]
                               * (1 if _goal(v, v.primary_metric) == "higher" else -1))
                    overrides_text = " ".join(best.lineage.get("sweep", {}).get("overrides", []))
                    reg.promote(model, best.version, alias="candidate",
                                reason=f"best of sweep {sweep_id}: {overrides_text}")
        finally:
            store.close()
        _render_sweep(out, model, sweep_id, rows, best)
        if best is None:
            raise typer.Exit(1)

    @models_app.command("skew")
    @handles_errors
    def skew(model: str = typer.Argument(..., help="The model name."),
             rows: int = typer.Option(200, "--rows", min=1, help="Label rows sampled (seeded)."),
             tolerance: float = typer.Option(1e-6, "--tolerance", min=0.0, help="Largest absolute difference of "
                                             "numbers that is not skew."),
             as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
             live: Optional[str] = typer.Option(None, "--live", metavar="DEPLOYMENT", help="Check the deployment's "
                                                "logged requests instead (the last --rows of them): what was served "
                                                "vs what training would have used at each request's time.")):
        """Training/serving skew: for sampled label rows, derived features as the training frame computed
        them vs the serving path's computation, and online features vs the offline store; with --live, on
        the deployment's logged traffic. Exit 3 on skew."""
        import json

        from .skew import check_live_skew, check_skew

        project, registry = project_and_registry()
        store = project.open_state()
        try:
            if live:
                name = live.replace("/", ".").split(".", 1)[1] if live.startswith("deployment") else live
                results = check_live_skew(project, registry, store, model, name, last=rows, tolerance=tolerance)
            else:
                results = check_skew(project, registry, store, model, rows=rows, tolerance=tolerance)
        finally:
            store.close()
        if as_json:
            typer.echo(json.dumps([{**r.__dict__, "ok": r.ok} for r in results], indent=2, default=str))
        else:
            from rich.table import Table

            table = Table(title=f"training/serving skew of {model} ({rows} rows sampled, tolerance {tolerance:g})")
            for column in ("feature", "kind", "checked", "mismatches", "max |difference|", "expired online", "example"):
                table.add_column(column, overflow="fold")
            for r in results:
                table.add_row(_esc(r.feature), r.kind, str(r.checked),
                              f"[red]{r.mismatches}[/red]" if r.mismatches else "0", f"{r.max_difference:.3g}",
                              str(r.expired_online or ""), _esc(json.dumps(r.example, default=str)) if r.example else "")
            console().print(table if results else "The model reads no derived or online features: nothing to compare.")
        if any(not r.ok for r in results):
            raise typer.Exit(3)

    @models_app.command("rollback")
    @handles_errors
    def rollback(model: str = typer.Argument(..., help="The model name."),
                 reason: Optional[str] = typer.Option(None, "--reason", help="Why (kept in the alias history).")):
        """Move production back to the previous version (the current one becomes previous)."""
        from ml_framework.locking import held_lock

        _, store, registry = open_registry()
        try:
            with held_lock(store, "models rollback"):
                old, new = registry.rollback(model, reason=reason)
        finally:
            store.close()
        console().print(f"[green]{model}@production: v{old} → {new.label}[/green] (previous → v{old})")

    return models_app


def _sweep_axes(overrides: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Split overrides into sweep axes (key, [plain override per value]) and fixed overrides."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    from ml_framework.errors import SpecError

    axes, fixed = [], []
    for text in overrides:
        try:
            (override,) = OverridesParser.create().parse_overrides([text])
        except HydraException as exc:
            raise SpecError(f"malformed override {text!r}: {str(exc).strip().splitlines()[0]}") from exc
        if not override.is_sweep_override():
            fixed.append(text)
            continue
        try:
            values = list(override.sweep_string_iterator())
        except Exception as exc:  # interval() sweeps need a search algorithm
            raise SpecError(f"override {text!r}: only list, range() and choice() sweeps are supported") from exc
        prefix = {OverrideType.ADD: "+", OverrideType.FORCE_ADD: "++"}.get(override.type, "")
        axes.append((override.key_or_group, [f"{prefix}{override.key_or_group}={v}" for v in values]))
    return axes, fixed


def _render_sweep(out, model: str, sweep_id: str, rows, best) -> None:
    from rich.table import Table

    table = Table(title=f"Sweep {sweep_id} of {_esc(model)}", title_justify="left")
    for column in ("", "overrides", "version", "status", "metric", "gates"):
        table.add_column(column)
    for combo, version, error in rows:
        short = " ".join(c.rsplit(".", 1)[-1] for c in combo)
        if version is None:
            table.add_row("", _esc(short), "–", "[red]failed[/red]", "–", _esc((error or "")[:60]))
            continue
        metric = version.primary_metric
        mark = "[green]★[/green]" if best is not None and version.version == best.version else ""
        table.add_row(mark, _esc(short), version.label,
                      f"[{_STATUS_STYLE.get(version.status, '')}]{version.status}[/]",
                      f"{metric} {_fmt(version.metrics.get(metric))}", _gates_cell(version.gates))
    out.print(table)
    if best is not None:
        winner = " ".join(best.lineage.get("sweep", {}).get("overrides", []))
        out.print(f"[green]{_esc(model)}@candidate → {best.label}[/green] ({_esc(winner)}). "
                  f"Promote it with: ml models promote {_esc(model)} {best.label}")
    else:
        out.print("[red]No candidate passed its gates; no alias moved.[/red]")


def _looks_like_version(text: str) -> bool:
    value = text[1:] if text[:1] in "vV" else text
    return value.isdigit()


def _cost_line(cost) -> str:
    if not cost:
        return "–"
    from ml_framework.cost import money

    return (f"{cost.get('cpu_seconds')} CPU-s, peak {cost.get('peak_rss_mb')} MB: "
            f"{money(float(cost.get('price') or 0), cost.get('currency') or 'USD', small=True)} ({cost.get('priced_by')})")


def _show(out, v, events) -> None:
    from rich.table import Table

    lineage = dict(v.lineage or {})
    data = dict(lineage.get("data") or {})
    git = lineage.get("git") or {}
    status = f"[{_STATUS_STYLE.get(v.status, '')}]{v.status}[/]"
    summary = Table(show_header=False, title=f"{_esc(v.model)} {v.label}", title_justify="left", box=None)
    summary.add_column(style="bold")
    summary.add_column()
    rows = [
        ("status", status),
        ("aliases", ", ".join(v.aliases) or "–"),
        ("backend", v.backend),
        ("created", v.created),
        ("bentoml tag", _esc(v.bentoml_tag or "– (not saved: rejected)")),
        ("size", _size(lineage.get("model_size_bytes"))),
        ("training time", f"{_fmt(lineage.get('training_seconds'), 2)} s "
                          f"(whole run {_fmt(lineage.get('apply_seconds'), 2)} s)"),
        ("rows", ", ".join(f"{k} {n}" for k, n in (lineage.get("rows") or {}).items()) or "–"),
        ("split", ", ".join(f"{k}: {val}" for k, val in (lineage.get("split") or {}).items()) or "–"),
        ("monitor reference", _reference_line(lineage.get("reference"))),
        ("label", _esc(f"{(data.get('label') or {}).get('source', '?')}.{(data.get('label') or {}).get('column', '?')}")),
        ("features", _esc(", ".join(lineage.get("feature_refs") or []) or "–")),
        ("params", _esc(", ".join(f"{k}={val}" for k, val in sorted((lineage.get("params") or {}).items())))),
        ("data", _esc(f"{data.get('route', '?')} join; digest {str(data.get('digest', '?'))[:12]}")),
        ("spec hash", str(lineage.get("spec_hash", "–"))[:16]),
        ("git", f"{git.get('commit', '')[:12]}{' (uncommitted changes)' if git.get('dirty') else ''}" if git else
         "– (specs not in a git repository)"),
        ("compared with", lineage.get("baseline") or "– (no production version at training time)"),
        ("libraries", _esc(", ".join(f"{k} {val}" for k, val in (lineage.get("libraries") or {}).items()))),
        ("training cost", _esc(_cost_line(lineage.get("cost")))),
        ("model card", f"ml models card {_esc(v.ref)} (written to .ml/cards/{_esc(v.model)}-{v.label}.md and .html)"),
    ]
    for key, value in rows:
        summary.add_row(key, value)
    out.print(summary)

    metrics = Table(title="Metrics (held-out split)", title_justify="left")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for name, value in v.metrics.items():
        metrics.add_row(name + (" (primary)" if name == v.primary_metric else ""), _fmt(value))
    out.print(metrics)

    if v.gates:
        gates = Table(title="Gates", title_justify="left")
        for column in ("", "gate", "value", "threshold", "detail"):
            gates.add_column(column)
        for g in v.gates:
            gates.add_row(_GATE_MARK.get(g.get("status"), "?"), _esc(g.get("gate")), _fmt(g.get("value")),
                          _fmt(g.get("threshold")), _esc(g.get("detail", "")))
        out.print(gates)

    slices = lineage.get("slices") or {}
    for column, segments in slices.items():
        table = Table(title=f"Slice: {_esc(column)}", title_justify="left")
        table.add_column("segment")
        table.add_column("rows", justify="right")
        names = list(v.metrics)
        for name in names:
            table.add_column(name, justify="right")
        for segment, info in segments.items():
            values = info.get("metrics") or {}
            table.add_row(_esc(segment), str(info.get("rows", "")), *(_fmt(values.get(n)) for n in names))
        out.print(table)

    importance = lineage.get("importance") or {}
    contributions = importance.get("mean_abs_contribution") or {}
    if contributions:
        gain = importance.get("gain") or {}
        table = Table(title=f"Global importance (held-out rows: {importance.get('rows')}; top 10)",
                      title_justify="left")
        table.add_column("feature")
        table.add_column("mean |contribution|", justify="right")
        if gain:
            table.add_column("gain", justify="right")
        for name, value in sorted(contributions.items(), key=lambda kv: -kv[1])[:10]:
            table.add_row(_esc(name), f"{value:.4f}", *([f"{gain.get(name, 0):.1f}"] if gain else []))
        out.print(table)

    files = data.get("files") or {}
    if files:
        table = Table(title="Training data", title_justify="left")
        table.add_column("file")
        table.add_column("content key")
        for path, key in files.items():
            table.add_row(_esc(path), key)
        out.print(table)

    if events:
        table = Table(title="Alias history (newest first)", title_justify="left")
        for column in ("when", "alias", "move", "who", "why"):
            table.add_column(column)
        for e in events:
            move = f"{'v' + str(e.from_version) if e.from_version else '–'} → {'v' + str(e.to_version) if e.to_version else '–'}"
            table.add_row(e.at, e.alias, move, _esc(e.who), _esc(e.reason))
        out.print(table)


def _serving_costs(project, store, version) -> list[dict[str, Any]]:
    """What the deployments serving ``version`` cost now (their backends' status: ``cost``)."""
    import re

    from ml_framework.cli import kit

    _, plugins = kit.project_and_registry()
    out = []
    for record in store.list_resources():
        if record.kind != "Deployment" or re.split(r"[@:]", str(record.spec.get("model") or ""))[0] != version.model:
            continue
        if ((record.outputs or {}).get("stable") or {}).get("version") != version.label:
            continue
        try:
            if plugins.capable(record.backend, "status"):
                cost = plugins.get(record.backend).status(record, project.root).get("cost")
                if cost:
                    out.append({"deployment": record.address.split(".", 1)[1], **cost})
        except Exception:  # noqa: BLE001 - a card without the serving cost is still a card
            continue
    return out


_LOWER_IS_BETTER = {"logloss", "rmse", "mae"}  # used when a version did not record its metric goals


def _goal(v, name: str) -> str:
    goals = (v.lineage or {}).get("metric_goals") or {}
    return goals.get(name) or ("lower" if name in _LOWER_IS_BETTER else "higher")


def _compare(a, b) -> dict[str, Any]:
    """Plain data: metrics (a, b, delta, which is better), params/features/data differences."""
    from .importance import moved_most

    la, lb = dict(a.lineage or {}), dict(b.lineage or {})
    same_model = a.model == b.model
    name_a, name_b = (a.label, b.label) if same_model else (a.ref, b.ref)  # fraud:v1 vs fraud_mlp:v1, not v1 vs v1
    metrics = {}
    for name in dict.fromkeys(list(a.metrics) + list(b.metrics)):
        va, vb = a.metrics.get(name), b.metrics.get(name)
        delta = round(vb - va, 6) if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
        better = None
        if delta:
            better = name_b if (delta > 0) == (_goal(b, name) == "higher") else name_a
        metrics[name] = {"a": va, "b": vb, "delta": delta, "better": better}
    pa, pb = la.get("params") or {}, lb.get("params") or {}
    params = {k: {"a": pa.get(k), "b": pb.get(k)} for k in sorted(set(pa) | set(pb)) if pa.get(k) != pb.get(k)}
    fa, fb = la.get("feature_refs") or [], lb.get("feature_refs") or []
    da, db = (la.get("data") or {}).get("files") or {}, (lb.get("data") or {}).get("files") or {}
    data = {p: {"a": da.get(p), "b": db.get(p)} for p in sorted(set(da) | set(db)) if da.get(p) != db.get(p)}
    return {
        "a": a.ref, "b": b.ref,
        "same_model": same_model,
        "note": None if same_model else (f"two models: {a.model} and {b.model}; their params and features may differ "
                                         "by design (metrics compare on each model's own held-out split)"),
        "status": {"a": a.status, "b": b.status},
        "metrics": metrics,
        "params": params,
        "features": {"added": [f for f in fb if f not in fa], "removed": [f for f in fa if f not in fb]},
        "data": data,
        "rows": {"a": la.get("rows"), "b": lb.get("rows")},
        "training_seconds": {"a": la.get("training_seconds"), "b": lb.get("training_seconds")},
        # shares of the total mean |contribution| on each version's held-out rows, largest moves first
        "importance": moved_most(la.get("importance"), lb.get("importance"), top=5),
    }


def _render_compare(out, a, b, diff) -> None:
    from rich.table import Table

    name_a, name_b = (a.label, b.label) if diff.get("same_model", True) else (a.ref, b.ref)
    if diff.get("note"):
        out.print(f"[yellow]Note:[/yellow] {_esc(diff['note'])}")
    table = Table(title=f"{_esc(a.ref)} vs {_esc(b.ref)} (held-out metrics)", title_justify="left")
    for column in ("metric", name_a, name_b, "delta", "better"):
        table.add_column(column, justify="right" if column not in ("metric", "better") else "left")
    for name, m in diff["metrics"].items():
        delta = m["delta"]
        style = "" if not m["better"] else ("green" if m["better"] == name_b else "red")
        shown = "–" if delta is None else (f"[{style}]{delta:+.4f}[/]" if style else f"{delta:+.4f}")
        table.add_row(name, _fmt(m["a"]), _fmt(m["b"]), shown, m["better"] or "same")
    table.add_row("training time (s)", _fmt(diff["training_seconds"]["a"], 2), _fmt(diff["training_seconds"]["b"], 2),
                  "", "")
    out.print(table)
    changes = Table(title="What differs", title_justify="left")
    for column in ("", name_a, name_b):
        changes.add_column(column)
    for key, values in diff["params"].items():
        changes.add_row(f"params.{_esc(key)}", _esc(_fmt(values["a"])), _esc(_fmt(values["b"])))
    for feature in diff["features"]["added"]:
        changes.add_row("feature", "", f"+ {_esc(feature)}")
    for feature in diff["features"]["removed"]:
        changes.add_row("feature", f"- {_esc(feature)}", "")
    for path, keys in diff["data"].items():
        changes.add_row(f"data {_esc(path)}", str(keys["a"] or "–")[:12], str(keys["b"] or "–")[:12])
    if diff["status"]["a"] != diff["status"]["b"]:
        changes.add_row("status", diff["status"]["a"], diff["status"]["b"])
    for moved in diff.get("importance") or []:
        changes.add_row(f"importance {_esc(moved['feature'])}", f"{moved['a']:.1%}", f"{moved['b']:.1%}")
    if changes.row_count:
        out.print(changes)
    else:
        out.print("Same params, features and data.")


def _app() -> typer.Typer:
    from ml_framework.cli import kit

    return _build(kit.project_and_registry, kit.handles_errors, kit.console, kit.fail, kit.split_args)


app = _app()  # `ml models` (contributed by the models plugin)
