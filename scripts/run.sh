#!/usr/bin/env bash
# `make run`: install if needed, create and seed the shop database if missing,
# train only if config/domain/data changed, then start the action server,
# the Rasa server and the chat page, and stop all of them on Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KEFU_ROOT"

RASA_PORT="${KEFU_RASA_PORT:-5005}"
ACTIONS_PORT=5055   # endpoints.yml points Rasa at this port
WEB_PORT="${KEFU_WEB_PORT:-8080}"
HOST="${KEFU_HOST:-127.0.0.1}"
CORS_ORIGINS="${KEFU_CORS_ORIGINS:-http://localhost:$WEB_PORT http://127.0.0.1:$WEB_PORT}"
LOG_DIR="$KEFU_ROOT/var/log"
mkdir -p "$LOG_DIR"

for port in "$RASA_PORT" "$ACTIONS_PORT" "$WEB_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is already in use (is another 'make run' still running?)"
  fi
done

ensure_venv

new_secret() { "$PY" -c 'import secrets; print(secrets.token_hex(16))'; }
# Secrets made for this run unless production sets its own: the one signing
# chat sessions and customer tokens, and the one Rasa sends the action
# server (endpoints.yml).
export KEFU_TOKEN_SECRET="${KEFU_TOKEN_SECRET:-$(new_secret)}"
export KEFU_ACTION_SECRET="${KEFU_ACTION_SECRET:-$(new_secret)}"
# For `make shell` in another terminal, whose Rasa calls this action server.
mkdir -p var/run && (umask 077 && printf '%s\n' "$KEFU_ACTION_SECRET" > var/run/action-secret)
# The secret a shop's own order system sends with its events
# (POST /api/notices/events, docs/notices.md): kept across runs.
if [ -z "${KEFU_EVENTS_SECRET:-}" ]; then
  [ -s var/run/events-secret ] || (umask 077 && new_secret > var/run/events-secret)
  KEFU_EVENTS_SECRET="$(cat var/run/events-secret)"
fi
export KEFU_EVENTS_SECRET
# The chat page's demo "logged-in" switch: only for the local demo (this
# script on loopback with the demo shop, i.e. no DATABASE_URL of your own).
# kefu.web refuses it on any other interface.
if [ -z "${KEFU_DEMO_LOGIN+set}" ] && [ -z "${DATABASE_URL:-}" ] && [[ "$HOST" =~ ^(127\.|localhost$|::1$) ]]; then
  export KEFU_DEMO_LOGIN=1
fi
export KEFU_HOST="$HOST"
"$PY" -m kefu.exposure || die "see above; nothing was started"

ensure_database
MODEL="$(ensure_model)"
# Locally the agent console has a demo agent account whose password is made
# for this run (printed below); production adds accounts with `kefu staff add`.
DEMO_AGENT_LINE=""
if [ "${KEFU_DEMO_LOGIN:-}" = "1" ]; then
  DEMO_AGENT_PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(9))')"
  printf '%s\n' "$DEMO_AGENT_PASSWORD" | "$PY" -m kefu.cli staff add demo --role agent >/dev/null \
    || die "could not create the demo agent account"
  DEMO_ADMIN_PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(9))')"
  printf '%s\n' "$DEMO_ADMIN_PASSWORD" | "$PY" -m kefu.cli staff add demo-admin --role admin >/dev/null \
    || die "could not create the demo admin account"
  DEMO_AGENT_LINE="  Console login  demo / $DEMO_AGENT_PASSWORD   (demo agent, this run only)
                 demo-admin / $DEMO_ADMIN_PASSWORD   (demo admin: campaigns; this run only)"
  # The dashboard's demo month (once: a fresh analytics store only; seconds).
  mkdir -p "$LOG_DIR" && "$PY" -m kefu.cli analytics demo --if-empty >"$LOG_DIR/analytics-demo.log" 2>&1 \
    || say "the analytics demo month was not generated; see var/log/analytics-demo.log"
  # A demo can be tried at any hour; a shop sets its own service hours.
  export KEFU_SERVICE_HOURS="${KEFU_SERVICE_HOURS:-0-24}"
  # Likewise campaigns: no quiet hours in the local demo unless asked for
  # (a shop keeps the default, 22-8 China time).
  export KEFU_QUIET_HOURS="${KEFU_QUIET_HOURS-}"
fi
# Sanic refuses larger request bodies with 413 before Rasa sees them.
export SANIC_REQUEST_MAX_SIZE="${SANIC_REQUEST_MAX_SIZE:-1048576}"

PIDS=()
stop_all() {
  trap - INT TERM HUP EXIT
  # The terminal (or a `| tee`) may be gone already: a failed write must not
  # kill this script before the servers are stopped.
  trap '' PIPE
  if [ "${#PIDS[@]}" -gt 0 ]; then
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    say "stopping" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
    done
  fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Each server gets its own process group so Ctrl-C stops its children too.
start() {
  local name="$1"; shift
  setsid "$@" >"$LOG_DIR/$name.log" 2>&1 &
  PIDS+=("$!")
}

wait_for() {
  local name="$1" url="$2" pid="$3" seconds="${4:-120}"
  for _ in $(seq "$seconds"); do
    if "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" 2>/dev/null; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$LOG_DIR/$name.log" >&2; die "$name exited; see var/log/$name.log"; }
    sleep 1
  done
  tail -n 30 "$LOG_DIR/$name.log" >&2
  die "$name did not answer at $url within ${seconds}s; see var/log/$name.log"
}

AUTH_ARGS=()
if [ -n "${RASA_AUTH_TOKEN:-}" ]; then AUTH_ARGS=(--auth-token "$RASA_AUTH_TOKEN"); fi
if [ -n "${RASA_JWT_SECRET:-}" ]; then AUTH_ARGS+=(--jwt-secret "$RASA_JWT_SECRET" --jwt-method HS256); fi
# shellcheck disable=SC2206
CORS_ARGS=(--cors $CORS_ORIGINS)

say "starting the action server on :$ACTIONS_PORT"
start actions "$PY" -m kefu.action_server --actions actions --port "$ACTIONS_PORT"
ACTIONS_PID="${PIDS[-1]}"
say "starting the Rasa server on :$RASA_PORT"
start rasa "$VENV/bin/rasa" run --enable-api --model "$MODEL" --interface "$HOST" --port "$RASA_PORT" \
  --credentials credentials.yml --endpoints endpoints.yml "${CORS_ARGS[@]}" "${AUTH_ARGS[@]}"
RASA_PID="${PIDS[-1]}"
# The notices' job queue (dramatiq) needs Redis: the one on 6379 (or
# KEFU_QUEUE_URL), else a project-owned redis-server started here.
NOTICES_LINE="  Notices        worker running (var/log/notices.log); try: .venv/bin/python -m kefu.cli demo advance"
export KEFU_QUEUE_URL="${KEFU_QUEUE_URL:-redis://127.0.0.1:6379/0}"
redis_answers() { "$PY" -c 'import sys, redis; redis.Redis.from_url(sys.argv[1], socket_timeout=2).ping()' "$1" 2>/dev/null; }
if ! redis_answers "$KEFU_QUEUE_URL"; then
  if command -v redis-server >/dev/null; then
    mkdir -p var/redis
    say "starting Redis for the notice queue on :6381 (var/redis)"
    start redis redis-server --port 6381 --bind 127.0.0.1 --dir "$KEFU_ROOT/var/redis" --appendonly yes --save ""
    export KEFU_QUEUE_URL="redis://127.0.0.1:6381/0"
    for _ in $(seq 20); do redis_answers "$KEFU_QUEUE_URL" && break; sleep 0.25; done
  fi
fi
if redis_answers "$KEFU_QUEUE_URL"; then
  say "starting the notice worker (queue $KEFU_QUEUE_URL)"
  start notices "$PY" -m kefu.notices.worker
else
  NOTICES_LINE="  Notices        OFF: no Redis at $KEFU_QUEUE_URL and no redis-server to start (apt-get install redis-server)"
  say "no Redis for the notice queue: notices are not sent this run"
fi
say "starting the chat page and the agent console on :$WEB_PORT"
start web "$PY" -m kefu.web --host "$HOST" --port "$WEB_PORT" --rasa-url "http://localhost:$RASA_PORT"
WEB_PID="${PIDS[-1]}"

wait_for actions "http://127.0.0.1:$ACTIONS_PORT/health" "$ACTIONS_PID"
wait_for web "http://127.0.0.1:$WEB_PORT/" "$WEB_PID"
wait_for rasa "http://127.0.0.1:$RASA_PORT/" "$RASA_PID" 300

cat <<EOF

  Kefu is running. Logs: var/log/{rasa,actions,web,notices}.log

  Chat page      http://localhost:$WEB_PORT/
  Agent console  http://localhost:$WEB_PORT/console/
  Dashboard      http://localhost:$WEB_PORT/console/analytics   (数据分析)
  Campaigns      http://localhost:$WEB_PORT/console/campaigns   (营销活动, admins: kefu staff add NAME --role admin)
$DEMO_AGENT_LINE
$NOTICES_LINE
  REST channel   needs a session from  curl -s -X POST localhost:$WEB_PORT/api/session  (see README)
  Parse a text   curl -s localhost:$RASA_PORT/model/parse -d '{"text":"小米13多少钱"}'
  Terminal chat  make shell   (in another terminal)

  Press Ctrl-C to stop.

EOF
wait -n "${PIDS[@]}" || true
say "a server stopped unexpectedly; see var/log/"
exit 1
