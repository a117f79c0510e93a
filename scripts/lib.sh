# Shared shell functions for run.sh, test.sh and the Makefile. Source it.
# shellcheck shell=bash

KEFU_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KEFU_VENV:-$KEFU_ROOT/.venv}"
PY="$VENV/bin/python"
STAMP="$VENV/.kefu-installed"

# endpoints.yml sends ${KEFU_ACTION_SECRET} to the action server; Rasa
# refuses to read the file when the variable is not set at all.
export KEFU_ACTION_SECRET="${KEFU_ACTION_SECRET-}"

# The tests `make check` runs: those that need no trained model, no server,
# no PostgreSQL and take seconds (markers in pyproject.toml). `make test`
# runs the others after it.
FAST_TESTS="not model and not e2e and not browser and not postgres and not slow"
SLOW_TESTS="model or e2e or browser or postgres or slow"

say() { printf '\033[1;32m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Rasa 3.6 runs on Python 3.10 only. Prefer an explicit KEFU_PYTHON, then a
# python3.10 that actually starts (a pyenv shim may exist but refuse), then
# any pyenv-installed 3.10.
find_python310() {
  local candidate
  for candidate in "${KEFU_PYTHON:-}" python3.10 \
      "$(command -v pyenv >/dev/null 2>&1 && pyenv root)"/versions/3.10*/bin/python \
      /usr/local/bin/python3.10 /usr/bin/python3.10; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
      command -v "$candidate" 2>/dev/null || echo "$candidate"
      return 0
    fi
  done
  return 1
}

# Creates the virtualenv if missing and installs the pinned dependencies when
# pyproject.toml or requirements.lock changed since the last install.
ensure_venv() {
  local want have=""
  want="$(cat "$KEFU_ROOT/pyproject.toml" "$KEFU_ROOT/requirements.lock" | sha256sum | cut -d' ' -f1)"
  [ -f "$STAMP" ] && have="$(cat "$STAMP")"
  if [ -x "$PY" ] && [ "$want" = "$have" ]; then
    return 0
  fi
  if [ ! -x "$PY" ]; then
    local python
    python="$(find_python310)" || die "Python 3.10 not found (Rasa 3.6 needs it): install it (pyenv install 3.10) or set KEFU_PYTHON"
    say "creating virtualenv $VENV with $python"
    "$python" -m venv "$VENV"
  fi
  say "installing pinned dependencies (requirements.lock); the first time takes a few minutes"
  local log="$KEFU_ROOT/var/log/install.log"
  mkdir -p "$(dirname "$log")"
  {
    "$PY" -m pip install --disable-pip-version-check --upgrade "pip<25" "setuptools<71" "wheel<0.46" &&
    "$PY" -m pip install --disable-pip-version-check -r "$KEFU_ROOT/requirements.lock" &&
    "$PY" -m pip install --disable-pip-version-check --no-deps -e "$KEFU_ROOT" &&
    "$PY" -m pip check
  } >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "installation failed; see var/log/install.log"; }
  echo "$want" > "$STAMP"
}

# Creates and seeds the shop database if it is missing or empty.
ensure_database() {
  "$PY" -m kefu.cli db init >/dev/null || exit 2
  "$PY" -m kefu.cli db seed --if-empty || exit 2
}

# Regenerates the catalogue lookup tables and jieba dictionary from the
# database, then trains only if config, domain or data changed since the
# model in models/ was trained. Prints the model path on stdout.
ensure_model() {
  "$PY" -m kefu.cli nlu export >&2 || exit 2
  local fingerprint model
  fingerprint="$(training_fingerprint)"
  model="$KEFU_ROOT/models/kefu-$fingerprint.tar.gz"
  if [ -f "$model" ]; then
    say "model is up to date: models/$(basename "$model")"
  else
    say "training the model (config, domain or data changed)"
    local started=$SECONDS
    (cd "$KEFU_ROOT" && "$VENV/bin/rasa" train --domain domain --config config.yml --data data \
        --out models --fixed-model-name "kefu-$fingerprint" >&2) || die "training failed"
    say "trained in $((SECONDS - started)) s"
  fi
  echo "$model"
}

# A hash of everything training reads: pipeline and policies, domain,
# training data (including the generated catalogue), the jieba dictionary
# and the code of our own NLU components.
training_fingerprint() {
  (cd "$KEFU_ROOT" && find config.yml domain data var/nlu/jieba kefu/nlu -type f \( -name '*.yml' -o -name '*.yaml' -o -name '*.txt' -o -name '*.py' \) 2>/dev/null \
    | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)
}
