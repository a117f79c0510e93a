#!/usr/bin/env bash
# `make test`: the whole suite from a fresh clone. Installs what it needs,
# runs `make check` (lint, types, fast tests), seeds a throw-away test
# database, trains the model once (reused by every test through KEFU_MODEL),
# validates the data, runs Rasa's conversation and NLU tests, then the rest
# of pytest (whose summary is the last line). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KEFU_ROOT"

ensure_venv

bash "$KEFU_ROOT/scripts/check.sh"

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
# are both held to the stories. Twice, side by side: as the bot runs, with
# kefu.rasa_speedups, and on stock Rasa (KEFU_RASA_SPEEDUPS=0), which the
# replacements must not change.
conversation_tests() {  # $1: name of the run; the environment says which Rasa
  "$VENV/bin/rasa" test core --model "$MODEL" --stories tests/stories --e2e \
    --out "$TEST_DIR/results/core-$1" --fail-on-prediction-errors >"$TEST_DIR/core-test-$1.log" 2>&1
}
conversation_results() {  # $1: name of the run, $2: its exit status
  local log="$TEST_DIR/core-test-$1.log"
  [ "$2" -eq 0 ] || { grep -v "^\s*$" "$log" | tail -n 40; die "conversation tests failed ($1; $log)"; }
  grep -E "Correct:|Accuracy:" "$log" | sed 's/^.*rasa.core.test  - /  /'
}
say "conversation tests (rasa test core --e2e on tests/stories), with kefu.rasa_speedups and on stock Rasa"
KEFU_RASA_SPEEDUPS=0 conversation_tests stock &
stock_run=$!
status=0; KEFU_RASA_SPEEDUPS=1 conversation_tests speedups || status=$?
stock_status=0; wait "$stock_run" || stock_status=$?
say "with kefu.rasa_speedups:"
conversation_results speedups "$status"
say "on stock Rasa (KEFU_RASA_SPEEDUPS=0):"
conversation_results stock "$stock_status"
grep -q "kefu.rasa_speedups installed" "$TEST_DIR/core-test-speedups.log" \
  || die "the first run did not install kefu.rasa_speedups (see $TEST_DIR/core-test-speedups.log)"
grep -q "KEFU_RASA_SPEEDUPS=0: running stock Rasa" "$TEST_DIR/core-test-stock.log" \
  || die "the stock-Rasa run did not run stock Rasa (see $TEST_DIR/core-test-stock.log)"

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

say "pytest (the tests make check did not run)"
"$PY" -m pytest -m "$SLOW_TESTS" "$@"
