"""What a deployment's service says about itself: the OpenAPI document (``GET /docs.json``) and the page a
person opens at its root (``GET /``), both generated from the contract the service enforces — the entity
keys and their types, the features of the versions it serves with their kinds and the rules of their
feature views' contracts (``isin`` as enums, ``between``/``gt``/... as bounds), what is required, the
answer's fields and every status the service can return. No external resource: the page works offline.

Pure functions of a :class:`ServiceContract` (built by the runtime from its configuration and the loaded
versions), so they are tested without a server.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

__all__ = ["ServiceContract", "openapi_document", "index_page", "INT64_MIN", "INT64_MAX"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class ServiceContract:
    deployment: str
    description: str = ""
    route: str = "/predict"
    model: str = ""
    versions: Sequence[str] = ()  # stable first, then a candidate during a rollout
    task: str = "binary"
    entity_keys: Mapping[str, str] = field(default_factory=dict)  # join key -> dtype
    raw_features: bool = True
    raw_only: Sequence[str] = ()  # features a request with entity keys must still send
    features: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> {kind, categories}
    rules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> value rules
    classes: Sequence[Any] | None = None
    auth_header: str | None = None
    rate_limited: bool = False
    max_bytes: int = 65_536
    rejects_unknown_entities: bool = True
    explains: bool = False  # a request may ask for an explanation ("explain": true)
    explains_always: bool = False  # every answer carries one


# -- schemas -----------------------------------------------------------------------------------------------


def _feature_schema(kind: Mapping[str, Any], rules: Mapping[str, Any] | None) -> dict[str, Any]:
    rules = dict(rules or {})
    if kind.get("kind") == "number":
        schema: dict[str, Any] = {"type": ["number", "null"]}
        if "between" in rules:
            low, high = rules["between"]
            schema.update(minimum=low, maximum=high)
        for rule, key in (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum"), ("lt", "exclusiveMaximum")):
            if rule in rules:
                schema[key] = rules[rule]
        if "isin" in rules:
            schema["enum"] = [*rules["isin"], None]
        return schema
    if kind.get("kind") == "timestamp":  # a request field of an on-demand view
        return {"type": ["string", "null"], "format": "date-time"}
    categories = list(kind.get("categories") or [])
    textual = not categories or all(isinstance(c, str) for c in categories)
    schema = {"type": ["string", "null"]} if textual else {"type": ["string", "number", "null"]}
    if "isin" in rules:
        schema["enum"] = [*rules["isin"], None]
    elif categories:
        schema["examples"] = categories[:5]
    if "regex" in rules and "enum" not in schema:
        schema["pattern"] = f"^(?:{rules['regex']})$"
    return schema


def _key_schema(dtype: str) -> dict[str, Any]:
    if dtype.startswith("int"):
        return {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
    return {"type": "string"}


def _request_schema(c: ServiceContract) -> dict[str, Any]:
    features = {name: _feature_schema(kind, c.rules.get(name)) for name, kind in c.features.items()}
    keys = {"type": "object", "properties": {k: _key_schema(t) for k, t in c.entity_keys.items()},
            "required": list(c.entity_keys), "additionalProperties": False,
            "description": "Join keys: the service looks the other features up in the online feature store."}
    request_id = {"type": ["string", "integer", "null"],
                  "description": "Echoed in the answer (one is made up if absent or null)."}
    absent = {"type": "null", "description": "null is the same as leaving the field out."}
    extra: dict[str, Any] = {"request_id": request_id}
    if c.explains:
        extra["explain"] = {"type": ["boolean", "null"],
                            "description": "true: the answer carries the largest feature contributions."}
    variants = []
    if c.entity_keys:
        properties: dict[str, Any] = {"entity_keys": keys, **extra, "features": absent}
        required = ["entity_keys"]
        if c.raw_features:
            given = {"type": "object" if c.raw_only else ["object", "null"], "properties": features,
                     "additionalProperties": False,
                     "description": "Feature values: they override the stored ones."
                     + (f" Required here: {', '.join(c.raw_only)} (their views are not keyed by the entity keys)."
                        if c.raw_only else "")}
            if c.raw_only:
                given["required"] = list(c.raw_only)
                required.append("features")
            properties["features"] = given
        variants.append({"type": "object", "properties": properties, "required": required,
                         "additionalProperties": False})
    if c.raw_features:
        variants.append({"type": "object", "additionalProperties": False, "required": ["features"],
                         "properties": {"features": {"type": "object", "properties": features,
                                                     "required": list(c.features), "additionalProperties": False,
                                                     "description": "Every feature the model uses."},
                                        "entity_keys": absent, **extra}})
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _answer_schema(c: ServiceContract) -> dict[str, Any]:
    multiclass = c.task == "multiclass"
    prediction = ({"type": "array", "items": {"type": "number"}, "description": "One probability per class."}
                  if multiclass else {"type": "number",
                                      "description": "P(positive class)" if c.task == "binary" else "The predicted value"})
    properties: dict[str, Any] = {
        "prediction": prediction,
        "model": {"type": "string"},
        "model_version": {"type": "string", "examples": list(c.versions)[:1]},
        "variant": {"type": "string", "enum": ["stable", "candidate"],
                    "description": "Which version answered (candidate: during a canary or A/B rollout)."},
        "request_id": {"type": "string"},
    }
    required = ["prediction", "model", "model_version", "variant", "request_id"]
    if c.explains or c.explains_always:
        contribution = {"type": "object", "required": ["feature", "contribution"],
                        "properties": {"feature": {"type": "string"}, "value": {},
                                       "contribution": {"type": "number"}}}
        properties["explanation"] = {
            "type": "object", "description": "The largest contributions to the raw output (log-odds for a binary "
                                             "model): base + every contribution = raw; rest sums those not listed.",
            "properties": {"output": {"type": "string"}, "base": {"type": "number"}, "raw": {"type": "number"},
                           "top": {"type": "array", "items": contribution}, "rest": {"type": "number"},
                           "error": {"type": "string"}}}
        if c.explains_always:
            required.append("explanation")
    if multiclass:
        properties["class"] = {"description": "The most likely class."}
        properties["probabilities"] = {"type": "object", "additionalProperties": {"type": "number"},
                                       "description": "Each named class's probability."}
        if c.classes:
            properties["class"]["enum"] = list(c.classes)
            properties["probabilities"]["properties"] = {str(k): {"type": "number"} for k in c.classes}
    return {"type": "object", "properties": properties, "required": required}


_ERROR = {"type": "object", "required": ["error"],
          "properties": {"error": {"type": "string"}, "detail": {}}}


def _statuses(c: ServiceContract) -> dict[str, str]:
    out = {"400": "Malformed JSON or header", "413": f"Body over {c.max_bytes} bytes",
           "422": "The request breaks the contract: `detail` lists each field (loc) and what is wrong (msg)",
           "500": "The prediction failed", "503": "The service is starting, or the feature store is unavailable"}
    if c.auth_header:
        out["401"] = f"Missing or invalid API key (header {c.auth_header}, or Authorization: Bearer)"
    if c.rate_limited:
        out["429"] = "Rate limit exceeded: retry after the Retry-After header's seconds"
    if c.entity_keys and c.rejects_unknown_entities:
        out["404"] = "Unknown entity: the online store holds no features for these keys"
    return dict(sorted(out.items()))


def openapi_document(c: ServiceContract) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service's prediction route, from its real contract."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {"200": {"description": "The prediction",
                                         "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}}}}
    for status, text in _statuses(c).items():
        responses[status] = {"description": text, **error}
        if status == "429":
            responses[status]["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        if status == "401":
            responses[status]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    operation: dict[str, Any] = {
        "operationId": "predict", "summary": f"Predict with {c.model or 'the model'}",
        "description": _operation_text(c),
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Request"}}}},
        "responses": responses,
    }
    components: dict[str, Any] = {"schemas": {"Request": _request_schema(c), "Answer": _answer_schema(c), "Error": _ERROR}}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": c.deployment, "version": (list(c.versions) or ["none"])[0],
                 "description": c.description or f"Predictions of {c.model}."},
        "paths": {c.route: {"post": operation}},
        "components": components,
    }
    if c.auth_header:
        components["securitySchemes"] = {"apiKey": {"type": "apiKey", "in": "header", "name": c.auth_header}}
        document["security"] = [{"apiKey": []}]
    return document


def _operation_text(c: ServiceContract) -> str:
    parts = []
    if c.entity_keys:
        parts.append(f"Send `entity_keys` ({', '.join(c.entity_keys)}): the other features are looked up online.")
    if c.raw_features:
        parts.append("Or send every feature in `features`." if c.entity_keys else "Send every feature in `features`.")
    parts.append("Features are held to their feature views' contracts (422 names the field and the rule).")
    return " ".join(parts)


# -- the page ------------------------------------------------------------------------------------------------


def _rule_text(kind: Mapping[str, Any], rules: Mapping[str, Any] | None) -> str:
    bits = []
    for rule, bound in (rules or {}).items():
        if rule == "isin":
            bits.append("one of " + ", ".join(map(str, bound)))
        elif rule == "between":
            bits.append(f"between {bound[0]} and {bound[1]}")
        else:
            bits.append(f"{ {'ge': '≥', 'le': '≤', 'gt': '>', 'lt': '<', 'regex': 'matches'}.get(rule, rule)} {bound}")
    return "; ".join(bits)


def index_page(c: ServiceContract) -> str:
    """A self-contained HTML page: what this service is, what serves, and how to call it."""
    e = html.escape
    rows = []
    for name, dtype in c.entity_keys.items():
        rows.append(f"<tr><td><code>entity_keys.{e(name)}</code></td><td>{'integer' if dtype.startswith('int') else 'text'}"
                    "</td><td>required</td><td>join key</td></tr>")
    for name, kind in c.features.items():
        where = ("required" if (not c.entity_keys or name in c.raw_only) else "looked up (may be sent)")
        if not c.raw_features:
            where = "looked up"
        typ = {"number": "number", "timestamp": "timestamp (ISO 8601)"}.get(kind.get("kind"), "category")
        rows.append(f"<tr><td><code>features.{e(name)}</code></td><td>{typ}</td><td>{e(where)}</td>"
                    f"<td>{e(_rule_text(kind, c.rules.get(name)))}</td></tr>")
    statuses = "".join(f"<li><b>{s}</b> {e(t)}</li>" for s, t in {"200": "the prediction", **_statuses(c)}.items())
    example = json.dumps(_example(c), indent=2)
    header = f" -H '{e(c.auth_header)}: KEY'" if c.auth_header else ""
    serving = ", ".join(c.versions) or "nothing yet"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(c.deployment)}</title>
<style>body{{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left}}
code,pre{{background:#f4f4f4;padding:.1rem .3rem}}pre{{padding:.6rem;overflow:auto}}</style></head>
<body><h1>{e(c.deployment)}</h1>
<p id="description">{e(c.description or '')}</p>
<p id="serving">Model <b>{e(c.model)}</b> ({e(c.task)}), serving <b>{e(serving)}</b>.</p>
<h2>POST {e(c.route)}</h2>
<table id="contract"><tr><th>field</th><th>type</th><th>in a request</th><th>contract</th></tr>
{''.join(rows)}</table>
<h3>Example</h3><pre>curl -s http://HOST{e(c.route)} -H 'content-type: application/json'{header} -d '{e(example)}'</pre>
<h3>Answers</h3><ul id="statuses">{statuses}</ul>
<p>OpenAPI document: <a href="/docs.json">/docs.json</a> · metrics: <a href="/metrics">/metrics</a> ·
readiness: <a href="/readyz">/readyz</a></p>
</body></html>"""


def _example(c: ServiceContract) -> dict[str, Any]:
    def value(name: str) -> Any:
        rules = c.rules.get(name) or {}
        kind = c.features.get(name) or {}
        if "isin" in rules:
            return list(rules["isin"])[0]
        if "between" in rules:
            return rules["between"][0]
        if kind.get("kind") == "timestamp":
            return "2026-06-01T14:03:00Z"
        if kind.get("kind") != "number":
            return (list(kind.get("categories") or []) or ["a"])[0]
        for rule in ("ge", "gt"):
            if rule in rules:
                return rules[rule] + (1 if rule == "gt" else 0)
        return 1.0

    if c.entity_keys:
        body: dict[str, Any] = {"entity_keys": {k: (1001 if t.startswith("int") else "id") for k, t in c.entity_keys.items()}}
        if c.raw_only:
            body["features"] = {n: value(n) for n in c.raw_only}
        return body
    return {"features": {n: value(n) for n in c.features}}
