#!/usr/bin/env bash
# `make prod`: the production topology on one machine (README, "Production
# topology"): nginx in front of two Rasa replicas and two action servers,
# the chat page, PostgreSQL for the shop and the analytics store, Redis
# (append-only) for conversations and locks, RabbitMQ as Rasa's event
# broker with the analytics consumer. Health-checked at start; a replica,
# action server or consumer that dies is started again; Ctrl-C stops all of it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$KEFU_ROOT"

HOST="${KEFU_HOST:-127.0.0.1}"
PUBLIC_PORT="${KEFU_PROD_PORT:-8080}"
read -r -a RASA_PORTS <<<"${KEFU_PROD_RASA_PORTS:-5005 5006}"
read -r -a ACTION_PORTS <<<"${KEFU_PROD_ACTION_PORTS:-5055 5056}"
ACTIONS_LB_PORT="${KEFU_PROD_ACTIONS_LB_PORT:-5050}"
WEB_PORT="${KEFU_PROD_WEB_PORT:-8081}"
# Redis: "own" starts a project-owned redis-server with append-only
# persistence on KEFU_PROD_REDIS_PORT; "host:port" uses one that runs already.
REDIS="${KEFU_PROD_REDIS:-own}"
REDIS_OWN_PORT="${KEFU_PROD_REDIS_PORT:-6380}"
# RabbitMQ: Rasa's event broker (deploy/endpoints.yml). This topology's own
# exchange and queue, so that another Kefu on the same server (a test, a
# second topology) neither receives its events nor sends it theirs; a vhost
# of its own, where one is set up, goes at the end of the URL.
export KEFU_RABBITMQ_URL="${KEFU_PROD_RABBITMQ:-amqp://guest:guest@127.0.0.1:5672/}"
export KEFU_RABBITMQ_EXCHANGE="${KEFU_PROD_RABBITMQ_EXCHANGE:-kefu-prod}"
export KEFU_RABBITMQ_QUEUE="${KEFU_PROD_RABBITMQ_QUEUE:-kefu_prod_analytics}"
PROD_DIR="$(mkdir -p "${KEFU_PROD_DIR:-$KEFU_ROOT/var/prod}" && cd "${KEFU_PROD_DIR:-$KEFU_ROOT/var/prod}" && pwd)"
LOG_DIR="$PROD_DIR/log"
RUN_DIR="$PROD_DIR/run"
export DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/kefu_prod}"
mkdir -p "$LOG_DIR" "$RUN_DIR" "$PROD_DIR/nginx/tmp"
rm -f "$RUN_DIR/ready"

command -v nginx >/dev/null || die "nginx not found: apt-get install -y nginx (README, Production topology)"
for port in "$PUBLIC_PORT" "${RASA_PORTS[@]}" "${ACTION_PORTS[@]}" "$ACTIONS_LB_PORT" "$WEB_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is already in use (is another 'make prod' or 'make run' running?)"
  fi
done

# Secrets come from the environment; a missing token secret is made up for
# this run (customer tokens signed by the shop's site then fail: set it).
if [ -z "${KEFU_TOKEN_SECRET:-}" ]; then
  say "KEFU_TOKEN_SECRET is not set: using a random one for this run (set it to the shop site's secret)"
  KEFU_TOKEN_SECRET="$("$PY" -c 'import secrets; print(secrets.token_hex(16))' 2>/dev/null || echo unset)"
fi
export KEFU_TOKEN_SECRET
export SANIC_REQUEST_MAX_SIZE="${SANIC_REQUEST_MAX_SIZE:-1048576}"

ensure_venv
say "shop database: $("$PY" -c 'import sys; from kefu.db.engine import describe_url; print(describe_url(sys.argv[1]))' "$DATABASE_URL")"
"$PY" - "$DATABASE_URL" <<'EOF' || die "cannot create the shop database named in DATABASE_URL"
# Create the PostgreSQL database if the server has none of that name.
import sys
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

url = make_url(sys.argv[1])
if url.get_backend_name() == "postgresql":
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", future=True,
                          connect_args={"connect_timeout": 5})
    with admin.connect() as conn:
        if not conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).first():
            conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
    admin.dispose()
EOF
ensure_database
MODEL="${KEFU_MODEL:-$(ensure_model)}"

PIDS=()
stop_all() {
  trap - INT TERM HUP EXIT
  trap '' PIPE
  say "stopping" 2>/dev/null || true
  # Supervisors first (so that nothing is started again), then what they ran.
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for file in "$RUN_DIR"/*.pid; do
    [ -f "$file" ] || continue
    kill -TERM -- "-$(cat "$file")" 2>/dev/null || kill -TERM "$(cat "$file")" 2>/dev/null || true
  done
  for file in "$RUN_DIR"/*.pid; do
    [ -f "$file" ] || continue
    local pid; pid="$(cat "$file")"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$file"
  done
  if [ "$REDIS" = own ]; then
    redis-cli -p "$REDIS_OWN_PORT" shutdown >/dev/null 2>&1 || true
  fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Runs a server in its own process group and starts it again when it dies
# (a killed replica comes back); its pid is in run/<name>.pid.
supervise() {
  local name="$1"; shift
  (
    child=""
    trap '[ -n "$child" ] && kill -TERM -- "-$child" 2>/dev/null; exit 0' TERM INT
    while :; do
      setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 &
      child=$!
      echo "$child" >"$RUN_DIR/$name.pid"
      status=0
      wait "$child" || status=$?
      echo "$(date -u +%FT%TZ) $name (pid $child) exited with $status; starting it again in 1 s" >>"$LOG_DIR/supervisor.log"
      sleep 1
    done
  ) &
  PIDS+=("$!")
}

wait_for() {
  local name="$1" url="$2" seconds="${3:-180}"
  for _ in $(seq "$seconds"); do
    if "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url" 2>/dev/null; then
      return 0
    fi
    sleep 1
  done
  tail -n 30 "$LOG_DIR/$name.log" >&2 || true
  die "$name did not answer at $url within ${seconds}s; see $LOG_DIR/$name.log"
}

# -- Redis ---------------------------------------------------------------
if [ "$REDIS" = own ]; then
  command -v redis-server >/dev/null || die "redis-server not found: apt-get install -y redis-server"
  mkdir -p "$PROD_DIR/redis"
  cat >"$PROD_DIR/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_OWN_PORT
dir $PROD_DIR/redis
appendonly yes
appendfsync everysec
save ""
daemonize yes
pidfile $RUN_DIR/redis.pidfile
logfile $LOG_DIR/redis.log
EOF
  if ! redis-cli -p "$REDIS_OWN_PORT" ping >/dev/null 2>&1; then
    say "starting Redis (append-only) on :$REDIS_OWN_PORT"
    redis-server "$PROD_DIR/redis.conf"
  fi
  export KEFU_REDIS_HOST=127.0.0.1 KEFU_REDIS_PORT="$REDIS_OWN_PORT"
else
  export KEFU_REDIS_HOST="${REDIS%:*}" KEFU_REDIS_PORT="${REDIS##*:}"
fi
for _ in $(seq 50); do redis-cli -h "$KEFU_REDIS_HOST" -p "$KEFU_REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -h "$KEFU_REDIS_HOST" -p "$KEFU_REDIS_PORT" ping >/dev/null 2>&1 || die "Redis does not answer at $KEFU_REDIS_HOST:$KEFU_REDIS_PORT"

# -- RabbitMQ -------------------------------------------------------------
# Rasa's pika broker takes the address, user and password apart; the probe
# stops here, with the reason, rather than after Rasa's 20 connection attempts.
rabbitmq_settings="$("$PY" - "$KEFU_RABBITMQ_URL" <<'EOF'
import asyncio, shlex, sys
from urllib.parse import unquote, urlparse

import aio_pika

url = urlparse(sys.argv[1])
assert url.scheme in ("amqp", "amqps")
address = f"{url.scheme}://{url.hostname}:{url.port or 5672}{url.path or '/'}"
for name, value in {"KEFU_RABBITMQ_ADDRESS": address, "KEFU_RABBITMQ_PORT": url.port or 5672,
                    "KEFU_RABBITMQ_USER": unquote(url.username or "guest"),
                    "KEFU_RABBITMQ_PASSWORD": unquote(url.password or "guest")}.items():
    print(f"export {name}={shlex.quote(str(value))}")


async def probe():
    connection = await aio_pika.connect(sys.argv[1], timeout=5)
    await connection.close()

try:
    asyncio.run(probe())
except Exception as exc:
    print(f"die {shlex.quote(f'RabbitMQ does not answer at KEFU_PROD_RABBITMQ ({exc}); apt-get install -y rabbitmq-server')}")
EOF
)" || die "KEFU_PROD_RABBITMQ is not an amqp:// URL"
eval "$rabbitmq_settings"
say "event broker: RabbitMQ, exchange $KEFU_RABBITMQ_EXCHANGE, queue $KEFU_RABBITMQ_QUEUE"

# -- action servers, Rasa replicas, chat page, analytics consumer ----------
export KEFU_ACTIONS_ADDRESS="127.0.0.1:$ACTIONS_LB_PORT"
# A replica killed mid-turn leaves its conversation's lock behind: it
# expires after this many seconds (Rasa's default is 60).
export TICKET_LOCK_LIFETIME="${TICKET_LOCK_LIFETIME:-15}"
export SANIC_WORKERS="${SANIC_WORKERS:-1}"
AUTH_ARGS=()
if [ -n "${RASA_AUTH_TOKEN:-}" ]; then AUTH_ARGS=(--auth-token "$RASA_AUTH_TOKEN"); fi
CORS_ORIGINS="${KEFU_CORS_ORIGINS:-http://localhost:$PUBLIC_PORT http://127.0.0.1:$PUBLIC_PORT}"
# shellcheck disable=SC2206
CORS_ARGS=(--cors $CORS_ORIGINS)

for index in "${!ACTION_PORTS[@]}"; do
  say "starting action server $((index + 1)) on :${ACTION_PORTS[$index]}"
  supervise "actions-$((index + 1))" "$VENV/bin/rasa" run actions --actions actions --port "${ACTION_PORTS[$index]}"
done
for index in "${!RASA_PORTS[@]}"; do
  say "starting Rasa replica $((index + 1)) on :${RASA_PORTS[$index]}"
  supervise "rasa-$((index + 1))" "$VENV/bin/rasa" run --enable-api --model "$MODEL" --interface 127.0.0.1 \
    --port "${RASA_PORTS[$index]}" --credentials credentials.yml --endpoints deploy/endpoints.yml \
    "${CORS_ARGS[@]}" "${AUTH_ARGS[@]}"
done
say "starting the chat page on :$WEB_PORT"
# The events come through RabbitMQ here: the SQL broker's consumer in kefu.web has nothing to read.
supervise web env KEFU_PROXIES_COUNT=1 KEFU_ANALYTICS_CONSUMER=0 "$PY" -m kefu.web --host 127.0.0.1 --port "$WEB_PORT" \
  --rasa-url "http://localhost:$PUBLIC_PORT"
say "starting the analytics consumer (RabbitMQ -> analytics tables in the shop database)"
supervise analytics "$PY" -m kefu.analytics.rabbitmq

# -- nginx ------------------------------------------------------------------
rasa_servers="" action_servers=""
# max_fails=0: a replica is never taken out for a slow turn; one that is
# down refuses the connection and the request goes to the next at once.
for port in "${RASA_PORTS[@]}"; do rasa_servers+="        server 127.0.0.1:$port max_fails=0;"$'\n'; done
for port in "${ACTION_PORTS[@]}"; do action_servers+="        server 127.0.0.1:$port max_fails=1 fail_timeout=5s;"$'\n'; done
"$PY" - "$PROD_DIR/nginx/nginx.conf" <<EOF
import sys
text = open("deploy/nginx.conf", encoding="utf-8").read()
for key, value in {"LOG_DIR": "$LOG_DIR", "HOST": "$HOST", "PUBLIC_PORT": "$PUBLIC_PORT",
                   "ACTIONS_PORT": "$ACTIONS_LB_PORT", "WEB_SERVER": "127.0.0.1:$WEB_PORT",
                   "ACTION_READ_TIMEOUT": "${KEFU_PROD_ACTION_READ_TIMEOUT:-8500ms}",
                   "RASA_SERVERS": """$rasa_servers""".rstrip(), "ACTION_SERVERS": """$action_servers""".rstrip()}.items():
    text = text.replace(f"@@{key}@@", value)
open(sys.argv[1], "w", encoding="utf-8").write(text)
EOF
nginx -t -q -p "$PROD_DIR/nginx" -c nginx.conf 2>"$LOG_DIR/nginx-test.log" || { cat "$LOG_DIR/nginx-test.log" >&2; die "nginx refused deploy/nginx.conf"; }
say "starting nginx on $HOST:$PUBLIC_PORT"
supervise nginx nginx -p "$PROD_DIR/nginx" -c nginx.conf

# -- health checks ------------------------------------------------------------
for index in "${!ACTION_PORTS[@]}"; do wait_for "actions-$((index + 1))" "http://127.0.0.1:${ACTION_PORTS[$index]}/health"; done
wait_for web "http://127.0.0.1:$WEB_PORT/"
for index in "${!RASA_PORTS[@]}"; do wait_for "rasa-$((index + 1))" "http://127.0.0.1:${RASA_PORTS[$index]}/" 300; done
wait_for nginx "http://127.0.0.1:$PUBLIC_PORT/healthz"
echo "ready" >"$RUN_DIR/ready"

cat <<EOF

  Kefu (production topology) is running. Logs: $LOG_DIR

  Chat page        http://localhost:$PUBLIC_PORT/   (nginx)
  REST channel     curl -s localhost:$PUBLIC_PORT/webhooks/rest/webhook -d '{"sender":"me","message":"你好"}'
  Rasa replicas    ${RASA_PORTS[*]}   action servers ${ACTION_PORTS[*]} (behind nginx :$ACTIONS_LB_PORT)
  Shop database    $("$PY" -c 'import sys; from kefu.db.engine import describe_url; print(describe_url(sys.argv[1]))' "$DATABASE_URL")
  Redis            $KEFU_REDIS_HOST:$KEFU_REDIS_PORT (conversations db 0, locks db 1)
  RabbitMQ         exchange $KEFU_RABBITMQ_EXCHANGE -> queue $KEFU_RABBITMQ_QUEUE -> analytics consumer

  Press Ctrl-C to stop.

EOF
# The supervisors run until Ctrl-C (or until one of them is killed).
wait -n "${PIDS[@]}" || true
say "a supervisor stopped unexpectedly; stopping everything"
exit 1
