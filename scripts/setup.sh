#!/usr/bin/env bash
# Create .venv and install ml with every built-in backend, pinned by constraints.txt.
# Idempotent and fast when nothing changed: a stamp records the hash of what was installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "ml needs Python 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

stamp_hash=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
stamp=.venv/.installed-$stamp_hash
if [ -f "$stamp" ] && [ -x .venv/bin/ml ]; then
  exit 0
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "Installing ml and its backends into .venv (pinned by constraints.txt)..."
# torch==2.13.0 (CPU) resolves from the local wheel directory configured for pip on these machines.
log=$(mktemp)
# This machine's pip config lists index folders that may be absent; hide those harmless warnings only.
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[backends,test]" >"$log" 2>&1; then
  grep -v "is ignored: it is neither a file nor a directory" "$log" >&2
  exit 1
fi
grep -v "is ignored: it is neither a file nor a directory" "$log" || true
rm -f "$log"
rm -f .venv/.installed-*
touch "$stamp"
