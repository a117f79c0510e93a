#!/usr/bin/env bash
# `make test`: the whole suite from a fresh clone. Installs what it needs,
# seeds a throw-away test database, trains the model once (reused by every
# test through KEFU_MODEL), validates the data, runs Rasa's conversation and
# NLU tests, then pytest (whose summary is the last line).
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

# Conversation tests replay the recorded events (no action server needed)
# and, with --e2e, parse every user text with the model: NLU and dialogue
# are both held to the stories.
say "conversation tests (rasa test core --e2e on tests/stories)"
"$VENV/bin/rasa" test core --model "$MODEL" --stories tests/stories --e2e \
  --out "$TEST_DIR/results/core" --fail-on-prediction-errors >"$TEST_DIR/core-test.log" 2>&1 \
  || { grep -v "^\s*$" "$TEST_DIR/core-test.log" | tail -n 40; die "conversation tests failed"; }
grep -E "Correct:|Accuracy:" "$TEST_DIR/core-test.log" | sed 's/^.*rasa.core.test  - /  /'

say "held-out NLU test (rasa test nlu on tests/nlu/holdout.yml)"
"$VENV/bin/rasa" test nlu --model "$MODEL" --nlu tests/nlu/holdout.yml --out "$TEST_DIR/results/nlu" >"$TEST_DIR/nlu-test.log" 2>&1 \
  || { tail -n 40 "$TEST_DIR/nlu-test.log"; die "rasa test nlu failed"; }
export KEFU_NLU_RESULTS="$TEST_DIR/results/nlu"
"$PY" scripts/nlu_report.py "$KEFU_NLU_RESULTS"

say "real-style held-out NLU test (rasa test nlu on tests/nlu/holdout_realstyle.yml)"
"$VENV/bin/rasa" test nlu --model "$MODEL" --nlu tests/nlu/holdout_realstyle.yml --out "$TEST_DIR/results/nlu-realstyle" \
  >"$TEST_DIR/nlu-realstyle-test.log" 2>&1 || { tail -n 40 "$TEST_DIR/nlu-realstyle-test.log"; die "rasa test nlu failed"; }
export KEFU_NLU_REALSTYLE_RESULTS="$TEST_DIR/results/nlu-realstyle"
"$PY" scripts/nlu_report.py "$KEFU_NLU_REALSTYLE_RESULTS"

say "pytest"
"$PY" -m pytest "$@"
