"""Two-phase validation: core fields with the kind's pydantic model, then the backend block with the
owning provider's config model. Every error names the file, line and field it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..errors import Location, PluginError, SpecError, SpecErrors, did_you_mean
from .compose import ComposedSpecs
from .kinds import SpecBase
from .loader import LocationMap

__all__ = ["ValidSpec", "validate_specs"]


@dataclass
class ValidSpec:
    spec: SpecBase
    config: Any  # the backend's settings model instance, or None
    location: Location | None
    plugin_error: PluginError | None = None  # the owning plugin could not be loaded
    plural: str = ""  # the kind's key in the composed tree
    references: tuple[tuple[str, str], ...] = ()  # (field path, target address)


def validate_specs(composed: ComposedSpecs, registry=None) -> list[ValidSpec]:
    """Validate every spec; raise SpecErrors listing all problems. Without a registry, phase 2 is skipped.

    A plugin that fails to import does not fail validation of other resources: its resources carry
    `plugin_error`, and the caller decides (validate reports them, apply fails only those resources).
    """
    errors: list[SpecError] = []
    valid: list[ValidSpec] = []
    kinds = composed.kinds
    if kinds is None:
        from ..plugin_registry import PluginRegistry

        kinds = registry.kinds if registry is not None else PluginRegistry().kinds
    for plural, bucket in composed.tree.items():
        kind = kinds.kind_of_plural(plural)
        for name, data in (bucket or {}).items():
            prefix = (plural, name)
            location = composed.locations.find(prefix)
            if kind is None or not isinstance(data, dict):
                errors.append(SpecError(f"unknown section {plural!r}", location=location))
                continue
            if data.get("kind") != kind or data.get("name") != name:
                errors.append(SpecError(f"{plural}.{name} must have kind {kind} and name {name!r}",
                                        location=location))
                continue
            schema = kinds.schema(kind)
            try:
                spec = schema.model_validate(data)
            except ValidationError as exc:
                errors.extend(_map_errors(exc, prefix, (), composed.locations, schema))
                continue
            valid.append(ValidSpec(spec=spec, config=None, location=location, plural=plural,
                                   references=tuple(kinds.references(spec))))
    if registry is not None:
        models: dict[tuple[str, str], Any] = {}  # (backend, kind) -> settings model: asked once per run
        for item in valid:
            errors.extend(_validate_backend(item, composed.locations, registry, models))
        errors.extend(_plugin_checks(valid, composed.locations, registry))
    if errors:
        raise SpecErrors(errors)
    return valid


def _plugin_checks(valid: list[ValidSpec], locations: LocationMap, registry) -> list[SpecError]:
    """The spec checks plugins contribute (rules across fields and resources), mapped to file and line."""
    from ..contract import SpecIssue, resolve

    specs = {item.spec.address: item.spec for item in valid}
    plurals = {item.spec.address: item.plural for item in valid}
    errors: list[SpecError] = []
    for plugin in registry.plugins().values():
        for target in plugin.checks:
            try:
                issues = list(resolve(target)(specs) or ())
            except Exception as exc:  # a broken check is the plugin's bug: say so, never a traceback
                errors.append(SpecError(f"plugin {plugin.name!r}: spec check {target} failed: {type(exc).__name__}: {exc}"))
                continue
            for issue in issues:
                if not isinstance(issue, SpecIssue) or issue.address not in specs:
                    continue
                path = (plurals[issue.address], specs[issue.address].name) + tuple(p for p in issue.field.split(".") if p)
                errors.append(SpecError(issue.message, location=locations.find(path), field=issue.field or None,
                                        hint=issue.hint))
    return errors


def _validate_backend(item: ValidSpec, locations: LocationMap, registry, models: dict) -> list[SpecError]:
    spec = item.spec
    plural = item.plural
    backend = spec.backend_name()
    backend_path = (plural, spec.name) + (
        (spec.backend_field, "backend") if spec.backend_field != "backend" else ("backend",))
    try:
        provider = registry.get(backend)
    except PluginError as exc:
        if backend in registry.names() and backend not in registry.disabled:
            item.plugin_error = exc  # installed but broken: only its resources fail, later
            return []
        return [SpecError(str(exc.message), location=locations.find(backend_path),
                          field=".".join(backend_path[2:]), hint=exc.hint)]
    if spec.kind not in provider.kinds:
        return [SpecError(f"backend {backend!r} does not handle kind {spec.kind}",
                          location=locations.find(backend_path), field=".".join(backend_path[2:]),
                          hint=f"it handles: {', '.join(provider.kinds)}")]
    key = (backend, spec.kind)
    if key not in models:
        models[key] = provider.config_model(spec.kind)
    model = models[key]
    settings = spec.backend_settings()
    if model is None:
        if settings:
            key = next(iter(settings))
            path = (plural, spec.name) + spec.settings_path() + (key,)
            return [SpecError(f"backend {backend!r} takes no settings here", location=locations.find(path),
                              field=".".join(path[2:]))]
        return []
    try:
        item.config = model.model_validate(settings)
    except ValidationError as exc:
        return _map_errors(exc, (plural, spec.name), spec.settings_path(), locations, model)
    return []


def _map_errors(exc: ValidationError, prefix, inner: tuple[str, ...], locations: LocationMap, model) -> list[SpecError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        # Discriminated/literal unions add the model name to loc; drop segments that are not fields.
        path = inner + loc
        field = ".".join(path)
        message = err["msg"]
        hint = None
        if err["type"] == "extra_forbidden":
            message = "unknown field"
            hint = did_you_mean(loc[-1], _known_fields(model, loc[:-1]))
        elif err["type"] == "missing":
            message = "required field is missing"
        elif "input" in err and not _is_sensitive(path):
            message = f"{message} (got {err['input']!r})"
        out.append(SpecError(message, location=locations.find(prefix + path), field=field, hint=hint))
    return out


def _is_sensitive(path: tuple[str, ...]) -> bool:
    """Never echo a value that may be a secret back into an error message."""
    from ..secrets import SENSITIVE_KEY

    return any(SENSITIVE_KEY.search(part) for part in path)


def _known_fields(model, parent: tuple[str, ...]) -> list[str]:
    """Field names valid at `parent` inside `model`, for 'did you mean' hints."""
    current = model
    for part in parent:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        current = _model_in(annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation):
    from typing import get_args

    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
