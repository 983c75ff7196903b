# Sourced by scripts/serve and scripts/test: make .venv and keep it in step with pyproject.toml.
# PARLEY_REUSE_VENV=/path/to/venv uses that environment as it is (no install) and runs this
# checkout's code through PYTHONPATH; the newcomer test uses it to skip a fresh install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
say() { echo "parley-setup: $*" >&2; }

if [ -n "${PARLEY_REUSE_VENV:-}" ]; then
  VENV="$PARLEY_REUSE_VENV"
  say "using the existing environment $VENV (PARLEY_REUSE_VENV); nothing to install"
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  return 0 2>/dev/null || exit 0
fi
VENV="$ROOT/.venv"
if [ ! -x .venv/bin/python ]; then
  if ! command -v "$PY" >/dev/null; then
    say "no $PY on this machine: install Python 3.11 or newer, or set PYTHON=python3.12"
    exit 2
  fi
  if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "$PY is Python $("$PY" -c 'import platform; print(platform.python_version())'); Parley needs 3.11 or newer (set PYTHON=...)"
    exit 2
  fi
  say "first run: creating .venv with $PY ($("$PY" -c 'import platform; print(platform.python_version())'))"
  "$PY" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  if [ -f .venv/.installed ]; then
    say "pyproject.toml changed: updating .venv"
  else
    say "installing Parley and its dependencies into .venv (FastAPI, uvicorn, SQLAlchemy,"
    say "  espeak-ng and pocketsphinx bindings, numpy, test tools); about half a minute ..."
  fi
  .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/pip install -q -e ".[dev]"
  touch .venv/.installed
  say "done; .venv is ready (next runs skip this step)"
fi
