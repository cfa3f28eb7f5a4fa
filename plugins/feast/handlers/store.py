"""FeatureStore: the online_store block of feature_store.yaml."""

from __future__ import annotations

from typing import Any, Mapping

from ml_framework.contract import ApplyResult, ReadResult
from ml_framework.errors import ProviderError

from ..materialize import online_store_identity
from ..repo import DEFAULT_ONLINE_STORE
from .base import Handler

__all__ = ["FeatureStoreHandler"]


def _online_store_block(spec) -> dict[str, Any]:
    store = spec.online_store
    if store.type == "sqlite":
        return {"type": "sqlite", "path": store.path}
    connection = store.connection_string
    if store.password_env:  # Feast expands ${VAR} when it loads feature_store.yaml: no secret on disk
        connection += f",password=${{{store.password_env}}}"
    block: dict[str, Any] = {"type": "redis", "connection_string": connection}
    if store.key_ttl_seconds:
        block["key_ttl_seconds"] = store.key_ttl_seconds
    return block


def _ping_redis(address: str, block: Mapping[str, Any]) -> None:
    import os

    import redis

    parts = [p.strip() for p in str(block["connection_string"]).split(",")]
    host, _, port = parts[0].partition(":")
    kwargs: dict[str, Any] = {"host": host or "localhost", "port": int(port or 6379), "socket_timeout": 3,
                              "socket_connect_timeout": 3}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key == "db":
            kwargs["db"] = int(value)
        elif key == "ssl":
            kwargs["ssl"] = value.lower() == "true"
        elif key == "password":
            kwargs["password"] = os.path.expandvars(value)
    try:
        redis.Redis(**kwargs).ping()
    except Exception as exc:  # connection refused, auth, timeout
        raise ProviderError(address, f"online_store: cannot reach Redis at {parts[0]}: {type(exc).__name__}: {exc}",
                            hint="start Redis or fix online_store.connection_string") from exc


class FeatureStoreHandler(Handler):
    kind, section = "FeatureStore", "feature_stores"

    def apply(self, backend, request, ctx):
        resource = request.resource
        spec = backend.spec(self.kind, resource.name, resource.spec)
        block = _online_store_block(spec)
        if block["type"] == "redis":
            ctx.progress("checking Redis")
            _ping_redis(resource.address, block)
        with backend.repo.lock():
            changed = backend.repo.write_online_store(block, owner=resource.address)
            self._remember(backend, spec.name, block)
        return ApplyResult(outputs={"online_store": online_store_identity(block), "project": backend.repo.project(),
                                    "config_file": str(backend.repo.config_file.relative_to(backend.project_dir))
                                    if backend.repo.config_file.is_relative_to(backend.project_dir)
                                    else str(backend.repo.config_file)},
                           message="online store configured" if changed else "online store unchanged")

    def delete(self, backend, recorded, ctx):
        with backend.repo.lock():
            backend.repo.write_online_store(dict(DEFAULT_ONLINE_STORE), owner="default")
            self._remember(backend, recorded.address.partition(".")[2], None)

    def read(self, backend, recorded):
        name = recorded.address.partition(".")[2]
        if name not in backend.repo.read_manifest()["feature_stores"]:
            return ReadResult(exists=False)
        spec = backend.spec(self.kind, name, recorded.spec)
        expected = online_store_identity(_online_store_block(spec))
        actual = online_store_identity(backend.repo.online_store_config())
        drift = {} if expected == actual else {"online_store": (expected, actual)}
        return ReadResult(exists=True, outputs=recorded.outputs, drift=drift)
