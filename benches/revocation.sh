#!/usr/bin/env bash
# Revocation latency across replicas (issue 12, SPEC §9: every replica refuses a revoked session
# within 100 ms). Three release flowgate replicas on loopback share one redis-server (started
# here on a free port in the work dir) for sessions and one SQLite users database, in front of
# the peer kit's nginx upstream (benches/bench_env.sh). ROUNDS times (benches/http_probe.py
# revoke): log in on A, use the session on A and B, log out on C while a client on A and one on B
# send requests with the session back to back; a sample is the time from the end of the logout
# on C to the first refusal on A (or B), clamped at 0; the same from the start of the logout's first
# request is printed as an upper bound. Prints p50/p99/max per replica and overall.
#
#   benches/revocation.sh                  # ROUNDS=200
#   SKIP_BUILD=1 ROUNDS=50 benches/revocation.sh
# Needs redis-server (./dev deps). Exit 1 when a sample exceeds 100 ms.
source "$(dirname "$0")/bench_env.sh"
ROUNDS=${ROUNDS:-200}
kill -TERM "$FG_PID"; wait "$FG_PID" 2>/dev/null || true; FG_PID=""
command -v redis-server >/dev/null || { echo "redis-server missing: run ./dev deps" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' --appendonly no > "$WORK/redis/log" 2>&1 &
EXTRA_PIDS+=($!)
for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

PORTS=()
for r in a b c; do
  p=$(free_port)
  mkdir -p "$WORK/$r"
  cp "$WORK/seed.yaml" "$WORK/$r/seed.yaml"
  sed -e "s#127.0.0.1:$PORT#127.0.0.1:$p#" -e "s#$WORK/data#$WORK/$r/data#" \
      -e "s#^identity: { seed: seed.yaml }#identity: { database: \"$WORK/users.db\", seed: seed.yaml }#" \
      -e "s#^session: { ttl: 12h, idle_timeout: 1h }#session: { ttl: 12h, idle_timeout: 1h, store: redis, redis: { url: \"redis://127.0.0.1:$RPORT/\" } }#" \
      "$WORK/flowgate.yaml" > "$WORK/$r/flowgate.yaml"
  grep -q "store: redis" "$WORK/$r/flowgate.yaml" && grep -q "users.db" "$WORK/$r/flowgate.yaml" \
    || { echo "could not write the config of replica $r" >&2; exit 1; }
  RUST_LOG=warn ./target/release/flowgate run -c "$WORK/$r/flowgate.yaml" > /dev/null 2> "$WORK/$r/flowgate.log" &
  EXTRA_PIDS+=($!)
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$p/.flowgate/health" >/dev/null 2>&1 && break; sleep 0.1; done
  kill -0 "${EXTRA_PIDS[-1]}" 2>/dev/null || { echo "replica $r did not start" >&2; cat "$WORK/$r/flowgate.log" >&2; exit 2; }
  PORTS+=("$p")
done
echo "# flowgate $(./target/release/flowgate --version); $(nproc) cores; replicas on ${PORTS[*]}, redis-server :$RPORT; $ROUNDS rounds" >&2
OUT=$($PROBE revoke "$(IFS=,; echo "${PORTS[*]}")" bench "$PASSWORD" "$ROUNDS")
echo "$OUT"
grep -q "^over_100ms=0 " <<<"$OUT"
