#!/usr/bin/env bash
# Session store comparison (issue 12, SPEC §9): the authenticated route of two flowgate
# instances in front of the peer kit's nginx upstream, timed by the kit in one run, each with its
# pid so the kit reports CPU µs per request:
#   flowgate-local   session.store: local (moka in front of SQLite)
#   flowgate-redis   session.store: redis (moka near cache in front of a redis-server this
#                    script starts on a free port in a temporary directory)
# A cached authenticated request makes no store round trip in either, so the target is
# redis ≥ 0.95× local (req/s) with the same CPU per request.
# Then the login rate of each store: STORM clients (benches/http_probe.py storm) log in through
# the JSON executor again and again for LOGIN_SECONDS on one instance, then on the other (each
# login is an argon2id check, a session written to the store and the flow state parked there).
#
#   benches/store_load.sh            # DURATION, CONNS, ROUNDS are passed to the kit;
#                                    # SKIP_BUILD=1 uses target/release/flowgate as it is;
#                                    # STORM (4), LOGIN_SECONDS (15) for the login rate
# Needs root (the kit installs nginx, apache2, wrk, curl when missing) and redis-server (./dev deps).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${PEERS_KIT:-$ROOT/../shared/bench/peers}
PORT=${FLOWGATE_BENCH_PORT:-18180}
WORK=$(mktemp -d)
trap 'kill "${FG_PID:-}" "${RFG_PID:-}" "${REDIS_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT INT TERM

"$KIT/install.sh"
cd "$ROOT"
./dev deps
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked --bin flowgate >&2

UPSTREAM_PORT=18080
source "$ROOT/benches/lib.sh"
start_flowgate '    headers: default'

RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/redis"
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' --appendonly no > "$WORK/redis/log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

RPORT_FG=$((PORT + 1))
mkdir -p "$WORK/r"
cp "$WORK/seed.yaml" "$WORK/r/seed.yaml"
sed -e "s#127.0.0.1:$PORT#127.0.0.1:$RPORT_FG#" -e "s#$WORK/data#$WORK/r/data#" \
    -e "s#^session: { ttl: 12h, idle_timeout: 1h }#session: { ttl: 12h, idle_timeout: 1h, store: redis, redis: { url: \"redis://127.0.0.1:$RPORT/\" } }#" \
    "$WORK/flowgate.yaml" > "$WORK/r/flowgate.yaml"
grep -q "store: redis" "$WORK/r/flowgate.yaml" || { echo "could not write the redis config" >&2; exit 1; }
RUST_LOG=warn ./target/release/flowgate run -c "$WORK/r/flowgate.yaml" 2> "$WORK/r/flowgate.log" &
RFG_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$RPORT_FG/.flowgate/health" >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 "$RFG_PID" 2>/dev/null || { echo "flowgate (redis) did not start" >&2; cat "$WORK/r/flowgate.log" >&2; exit 2; }

LSESSION=$(login "$PORT" "$WORK/jar")
RSESSION=$(login "$RPORT_FG" "$WORK/r/jar")
echo "# flowgate $(./target/release/flowgate --version): store local on :$PORT, store redis on :$RPORT_FG (redis-server :$RPORT)" >&2

"$KIT/run.sh" \
  "flowgate-local=http://127.0.0.1:$PORT/@flowgate_session=$LSESSION#$FG_PID" \
  "flowgate-redis=http://127.0.0.1:$RPORT_FG/@flowgate_session=$RSESSION#$RFG_PID"

STORM=${STORM:-4}; LOGIN_SECONDS=${LOGIN_SECONDS:-15}
for t in local redis; do
  p=$PORT; [ $t = redis ] && p=$RPORT_FG
  rm -f "$WORK/stop"
  python3 "$ROOT/benches/http_probe.py" storm "$p" bench "$PASSWORD" "$STORM" "$WORK/stop" > "$WORK/storm-$t.out" &
  sp=$!
  sleep "$LOGIN_SECONDS"; touch "$WORK/stop"; wait "$sp"
  out=$(cat "$WORK/storm-$t.out")
  n=$(sed -n 's/.*logins=\([0-9]*\).*/\1/p' <<<"$out")
  echo "login rate, store $t: $(awk -v n="$n" -v s="$LOGIN_SECONDS" 'BEGIN{printf "%.1f", n/s}')/s ($out; $STORM clients, ${LOGIN_SECONDS}s)"
done
