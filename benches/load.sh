#!/usr/bin/env bash
# Whole-proxy load test: starts a release flowgate in front of the peer kit's nginx upstream
# (127.0.0.1:18080), logs in through the JSON executor to get a session cookie, then runs the
# peer kit (../shared/bench/peers/run.sh) with two extra targets timed in the same run:
#   flowgate       an authenticated route (cookie → session → identity headers → upstream)
#   flowgate-skip  a skip-auth route (no session, identity headers stripped)
#   pingora-bare   a bare pingora proxy (pingora's own Server, no auth) to the same upstream,
#                  so flowgate's overhead over plain pingora shows in the same run
# and prints the kit's table (median req/s, p50, p99, ratio to the nginx plain proxy).
#
#   benches/load.sh                  # DURATION, CONNS, ROUNDS are passed to the kit
# Needs root (the kit installs nginx, apache2, wrk, curl when missing).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${PEERS_KIT:-$ROOT/../shared/bench/peers}
PORT=${FLOWGATE_BENCH_PORT:-18180}
WORK=$(mktemp -d)
trap 'kill "${FG_PID:-}" "${BARE_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT INT TERM

"$KIT/install.sh"
cd "$ROOT"
./dev deps
cargo build --release --locked --bin flowgate --example bare_pingora >&2

# flowgate in front of the kit's nginx upstream, which the kit's run.sh starts (benches/lib.sh).
UPSTREAM_PORT=18080
source "$ROOT/benches/lib.sh"
start_flowgate '    headers: default
    skip_auth: ["^/static/"]'
BARE_PINGORA_ADDR=127.0.0.1:18190 ./target/release/examples/bare_pingora > "$WORK/bare.log" 2>&1 &
BARE_PID=$!

API="http://127.0.0.1:$PORT/.flowgate/api/v3/flows/executor/default-authentication-flow/"
JAR="$WORK/jar"
curl -fs -c "$JAR" -b "$JAR" "$API" >/dev/null
curl -fs -o /dev/null -c "$JAR" -b "$JAR" -H 'content-type: application/json' -d '{"uid_field":"bench"}' "$API"
curl -fs -o /dev/null -c "$JAR" -b "$JAR" -H 'content-type: application/json' -d "{\"password\":\"$PASSWORD\"}" "$API"
curl -fs -c "$JAR" -b "$JAR" "$API" | grep -q xak-flow-redirect || { echo "login failed" >&2; cat "$WORK/flowgate.log" >&2; exit 1; }
SESSION=$(awk '$6=="flowgate_session"{print $7}' "$JAR")
[ -n "$SESSION" ] || { echo "no session cookie" >&2; exit 1; }
echo "# flowgate $(./target/release/flowgate --version) on 127.0.0.1:$PORT, logged in as bench" >&2

"$KIT/run.sh" \
  "flowgate=http://127.0.0.1:$PORT/@flowgate_session=$SESSION" \
  "flowgate-skip=http://127.0.0.1:$PORT/static/x" \
  "pingora-bare=http://127.0.0.1:18190/"
