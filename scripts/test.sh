#!/usr/bin/env bash
# `make test`: the whole suite from a fresh clone. Installs what it needs,
# seeds a throw-away test database, trains the model once (reused by every
# test through KEFU_MODEL), validates the data, runs Rasa's conversation and
# NLU tests, then pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KEFU_ROOT"

ensure_venv

TEST_DIR="$KEFU_ROOT/var/test"
rm -rf "$TEST_DIR"
mkdir -p "$TEST_DIR/results"
export DATABASE_URL="sqlite:///$TEST_DIR/shop.sqlite3"
export KEFU_TOKEN_SECRET="${KEFU_TOKEN_SECRET:-kefu-test-secret}"
say "seeding the test shop database"
"$PY" -m kefu.cli db init
"$PY" -m kefu.cli db seed -q

MODEL="$(ensure_model)"
export KEFU_MODEL="$MODEL"

say "rasa data validate"
"$PY" scripts/validate.py

ACTIONS_PORT="${KEFU_TEST_ACTIONS_PORT:-5255}"
cat > "$TEST_DIR/endpoints.yml" <<YML
action_endpoint:
  url: "http://127.0.0.1:$ACTIONS_PORT/webhook"
YML
say "starting a test action server on :$ACTIONS_PORT"
setsid "$VENV/bin/rasa" run actions --actions actions --port "$ACTIONS_PORT" >"$TEST_DIR/actions.log" 2>&1 &
ACTIONS_PID=$!
trap 'kill -TERM -- "-$ACTIONS_PID" 2>/dev/null || true' EXIT
for _ in $(seq 120); do
  "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$ACTIONS_PORT/health', timeout=2)" 2>/dev/null && break
  kill -0 "$ACTIONS_PID" 2>/dev/null || { cat "$TEST_DIR/actions.log"; die "the action server did not start"; }
  sleep 1
done

say "conversation tests (rasa test core on tests/stories)"
"$VENV/bin/rasa" test core --model "$MODEL" --stories tests/stories --endpoints "$TEST_DIR/endpoints.yml" \
  --out "$TEST_DIR/results/core" --fail-on-prediction-errors

say "held-out NLU test (rasa test nlu on tests/nlu/holdout.yml)"
"$VENV/bin/rasa" test nlu --model "$MODEL" --nlu tests/nlu/holdout.yml --out "$TEST_DIR/results/nlu" >"$TEST_DIR/nlu-test.log" 2>&1 \
  || { tail -n 40 "$TEST_DIR/nlu-test.log"; die "rasa test nlu failed"; }
export KEFU_NLU_RESULTS="$TEST_DIR/results/nlu"

kill -TERM -- "-$ACTIONS_PID" 2>/dev/null || true

say "pytest"
"$PY" -m pytest "$@"
