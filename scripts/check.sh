#!/usr/bin/env bash
# `make check`: lint, formatting, types and the fast tests (no trained model,
# no servers), in under a minute. `make test` runs it first. Extra arguments
# go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KEFU_ROOT"

ensure_venv
started=$SECONDS

say "ruff check"
"$VENV/bin/ruff" check .
say "ruff format --check"
"$VENV/bin/ruff" format --check .
say "mypy"
"$VENV/bin/mypy"

# The training-data tests read the jieba dictionary generated from the
# catalogue (as training does).
ensure_database
"$PY" -m kefu.cli nlu export >/dev/null

say "fast tests (pytest -m \"$FAST_TESTS\")"
"$PY" -m pytest -q --disable-warnings -m "$FAST_TESTS" "$@"

say "make check passed in $((SECONDS - started)) s"
