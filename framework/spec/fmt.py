"""`ml fmt`: spec files rewritten in one layout, as `terraform fmt` does for HCL. Layout only, never meaning.

What changes: indentation (mappings by 2 spaces, a list's ``-`` 2 spaces under its key), trailing
whitespace, blank lines at the end (exactly one newline), spacing after ``:`` and ``-``. What stays:
comments, key order, quoting, flow style (``{a: 1}``, ``[x, y]``), block scalars, long lines (never
re-wrapped) and the ``---`` between documents. A file whose documents would read differently after the
rewrite (which the round trip should never do) is left alone and reported.

Built on ruamel.yaml's round-trip mode (comments and styles survive a load and dump); imported only here.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass
from pathlib import Path

from ..errors import MLError

__all__ = ["FormatError", "Formatted", "format_text", "format_file", "spec_files", "diff", "display_name"]


class FormatError(MLError):
    """A spec file that cannot be read as YAML (with its file and line)."""


@dataclass(frozen=True)
class Formatted:
    path: Path
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def format_text(text: str, where: str = "<text>") -> str:
    """``text`` (one YAML file, one or more documents) in the canonical layout."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = _yaml()
    try:
        documents = list(yaml.load_all(text))
    except MarkedYAMLError as exc:
        # the line of the problem; when that is the end of the file (an unclosed bracket or quote), the line
        # where the broken construct starts
        mark = exc.problem_mark
        if mark is None or (exc.context_mark is not None and mark.index >= len(text.rstrip())):
            mark = exc.context_mark or mark
        line = f":{mark.line + 1}" if mark is not None else ""
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise FormatError(f"{where}{line}: not valid YAML: {what}",
                          hint="fix the file first: `ml validate` shows every problem") from None
    except YAMLError as exc:
        raise FormatError(f"{where}: not valid YAML: {exc}") from None
    if not documents:
        return text.strip() + "\n" if text.strip() else ""
    starts_explicitly = text.lstrip().startswith("---")
    out = io.StringIO()
    yaml.explicit_start = starts_explicitly
    yaml.dump_all(documents, out)
    result = "\n".join(line.rstrip() for line in out.getvalue().splitlines()).rstrip("\n") + "\n"
    if _plain(result) != _plain(text):
        raise FormatError(f"{where}: the layout could not be normalised without changing what it says; left as it is")
    return result


def _plain(text: str):
    """What the documents say, as plain data (for the round-trip check)."""
    import yaml as pyyaml

    try:
        return list(pyyaml.safe_load_all(text))
    except pyyaml.YAMLError:
        return None


def spec_files(paths: list[Path]) -> list[Path]:
    """The .yaml/.yml files of ``paths`` (folders searched recursively), sorted."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.exists():
            found.add(path)
        else:
            raise FormatError(f"{path}: no such file or folder")
    return sorted(found)


def display_name(path: Path, root: Path | None = None) -> str:
    """``path`` relative to ``root`` when it is inside it (how messages name a file)."""
    return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)


def format_file(path: Path, root: Path | None = None) -> Formatted:
    before = path.read_text(encoding="utf-8")
    return Formatted(path=path, before=before, after=format_text(before, display_name(path, root)))


def diff(formatted: Formatted, root: Path | None = None) -> str:
    name = display_name(formatted.path, root)
    return "".join(difflib.unified_diff(formatted.before.splitlines(keepends=True),
                                        formatted.after.splitlines(keepends=True), f"a/{name}", f"b/{name}"))
