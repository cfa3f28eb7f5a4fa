"""Where predictions go. Every sink is written chunk by chunk and then committed or aborted as a whole,
so a failed run leaves the previous output exactly as it was.

* :class:`ParquetSink` writes a temporary file next to the target and renames it over the target on
  commit (``os.replace``: atomic on one file system) — readers see the old file or the new one.
* :class:`PostgresSink` loads a staging table and, in the same transaction, drops the old table and
  renames the staging table in its place: readers see the old rows until the commit, then the new ones.
  The server's URL comes from an environment variable named in the spec; it is never recorded.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from ml_framework.errors import MLError

__all__ = ["BatchOutputError", "ParquetSink", "PostgresSink", "postgres_url", "drop_table", "table_exists",
           "pg_type"]


class BatchOutputError(MLError):
    """An output cannot be written (or removed): no database URL, a server error, a file-system error."""


# -- parquet ------------------------------------------------------------------------------------------------
class ParquetSink:
    def __init__(self, target: Path, schema, *, compression: str = "snappy"):
        import pyarrow.parquet as pq

        self.target = Path(target)
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BatchOutputError(f"cannot create the output folder {self.target.parent}: {exc}") from exc
        self.tmp = self.target.with_name(f".{self.target.name}.{uuid.uuid4().hex[:8]}.tmp")
        self.schema = schema
        self._writer = pq.ParquetWriter(self.tmp, schema, compression=None if compression == "none" else compression)
        self.rows = 0

    def write(self, table) -> None:
        self._writer.write_table(table)
        self.rows += table.num_rows

    def commit(self) -> None:
        self._writer.close()
        with open(self.tmp, "rb") as fh:  # on disk before it replaces the old file
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        try:
            self._writer.close()
        except Exception:  # a writer that failed mid-write may not close cleanly: the file goes anyway
            pass
        self.tmp.unlink(missing_ok=True)


# -- PostgreSQL --------------------------------------------------------------------------------------------
def postgres_url(url_env: str, address: str = "") -> str:
    """The libpq URL held by ``$url_env`` (SQLAlchemy's ``postgresql+psycopg://`` spelling accepted)."""
    url = os.environ.get(url_env, "").strip()
    if not url:
        raise BatchOutputError(f"the environment variable {url_env} is not set: it must hold the PostgreSQL URL "
                               f"of output.postgres", hint=f"export {url_env}=postgresql://user@host:5432/db")
    return re.sub(r"^postgres(ql)?\+[a-z0-9_]+://", "postgresql://", url)


def _split(table: str) -> tuple[str | None, str]:
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def _ident(schema: str | None, name: str):
    from psycopg import sql

    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def _connect(url: str, url_env: str):
    import psycopg

    try:
        return psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        raise BatchOutputError(f"cannot connect to PostgreSQL (the URL in ${url_env}): "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from exc


def pg_type(arrow_type) -> str:
    """The PostgreSQL column type for an Arrow type (text for anything without a closer match)."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_dictionary(t):
        return pg_type(t.value_type)
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_uint64(t) or pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz else "timestamp without time zone"
    if pa.types.is_date(t):
        return "date"
    return "text"


class PostgresSink:
    def __init__(self, url_env: str, table: str, schema, *, comment: str | None = None):
        from psycopg import sql

        self.url_env = url_env
        self.table = table
        self.schema = schema
        self.comment = comment
        self.rows = 0
        self._schema_name, self._name = _split(table)
        self._staging = f"{self._name[:40]}__ml_{uuid.uuid4().hex[:8]}"
        self._text = [i for i, f in enumerate(schema) if pg_type(f.type) == "text"
                      and not (_is_string(f.type))]
        self._conn = _connect(postgres_url(url_env), url_env)
        try:
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(pg_type(f.type))) for f in schema)
            with self._conn.cursor() as cur:
                if self._schema_name:
                    cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema_name)))
                cur.execute(sql.SQL("CREATE TABLE {} ({})").format(_ident(self._schema_name, self._staging), columns))
        except Exception as exc:
            self.abort()
            raise self._error("cannot create the staging table", exc) from exc

    def _error(self, what: str, exc: Exception) -> BatchOutputError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return BatchOutputError(f"PostgreSQL table {self.table}: {what}: {detail}")

    def write(self, table) -> None:
        from psycopg import sql

        names = sql.SQL(", ").join(sql.Identifier(f.name) for f in self.schema)
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        for i in self._text:  # types without a PostgreSQL counterpart are written as their text form
            columns[i] = [None if v is None else str(v) for v in columns[i]]
        try:
            with self._conn.cursor() as cur:
                with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(
                        _ident(self._schema_name, self._staging), names)) as copy:
                    for row in zip(*columns):
                        copy.write_row(row)
        except Exception as exc:
            raise self._error("cannot load the predictions", exc) from exc
        self.rows += table.num_rows

    def commit(self) -> None:
        from psycopg import sql

        target = _ident(self._schema_name, self._name)
        try:
            with self._conn.cursor() as cur:
                cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
                cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    _ident(self._schema_name, self._staging), sql.Identifier(self._name)))
                if self.comment:
                    cur.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(target, sql.Literal(self.comment)))
            self._conn.commit()
        except Exception as exc:
            self.abort()
            raise self._error("cannot replace the table", exc) from exc
        finally:
            self._conn.close()

    def abort(self) -> None:
        try:
            self._conn.rollback()
        except Exception:
            pass
        try:
            self._conn.close()
        except Exception:
            pass


def _is_string(arrow_type) -> bool:
    import pyarrow as pa

    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def table_exists(url_env: str, table: str) -> bool | None:
    """Whether the table exists; None when the server cannot be asked (no URL, unreachable)."""
    try:
        url = postgres_url(url_env)
        conn = _connect(url, url_env)
    except (BatchOutputError, ImportError):
        return None
    try:
        with conn.cursor() as cur:
            schema, name = _split(table)
            qualified = f'"{schema}"."{name}"' if schema else f'"{name}"'
            cur.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,))
            return bool(cur.fetchone()[0])
    except Exception:
        return None
    finally:
        conn.close()


def drop_table(url_env: str, table: str) -> None:
    from psycopg import sql

    conn = _connect(postgres_url(url_env), url_env)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_ident(*_split(table))))
        conn.commit()
    except Exception as exc:
        raise BatchOutputError(f"cannot drop the PostgreSQL table {table}: {exc}") from exc
    finally:
        conn.close()
