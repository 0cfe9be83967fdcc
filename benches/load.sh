#!/usr/bin/env bash
# Whole-proxy load test: starts a release flowgate in front of the peer kit's nginx upstream
# (127.0.0.1:18080), logs in through the JSON executor to get a session cookie, then runs the
# peer kit (../shared/bench/peers/run.sh) with two extra targets timed in the same run:
#   flowgate       an authenticated route (cookie → session → identity headers → upstream)
#   flowgate-skip  a skip-auth route (no session, identity headers stripped)
#   pingora-bare   a bare pingora proxy (pingora's own Server, no auth) to the same upstream,
#                  so flowgate's overhead over plain pingora shows in the same run
#   hyper-bare     a minimal hyper 1 + tokio proxy (benches/baseline/bare_hyper.rs: one
#                  current-thread runtime per CPU, per-thread keep-alive pool), the second
#                  reference: what a proxy costs on this stack without pingora's path
#   hyper-auth     the same with BARE_HYPER_AUTH=1: a prototype of the leaner data path of
#                  ADR 0022 (flowgate's own per-request functions on an authenticated request,
#                  a session of its own in a store of 100 000), to measure that proposal's gain
# and prints the kit's table (median req/s, p50, p99, CPU µs per request, ratio to the nginx plain
# proxy). Every flowgate and pingora target carries its pid, so the kit measures its CPU per request.
#
#   benches/load.sh                  # DURATION, CONNS, ROUNDS are passed to the kit
#   FLOWGATE_BASELINE=/tmp/flowgate-old benches/load.sh
#                                    # also times another flowgate binary (same config, own data
#                                    # dir, port+1) as flowgate-base / flowgate-base-skip in the
#                                    # same run: the no-regression check of a refactor;
#                                    # FLOWGATE_BASELINE_SED edits its config for keys it predates
#   SKIP_BUILD=1 benches/load.sh     # times target/release/flowgate and bare_pingora as they are
# Needs root (the kit installs nginx, apache2, wrk, curl when missing).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${PEERS_KIT:-$ROOT/../shared/bench/peers}
PORT=${FLOWGATE_BENCH_PORT:-18180}
WORK=$(mktemp -d)
# bare_pingora is killed outright: on SIGTERM pingora drains for minutes, and SIGINT did not stop it either.
trap 'kill "${FG_PID:-}" "${BASE_PID:-}" "${HYPER_PID:-}" "${HAUTH_PID:-}" 2>/dev/null || true; kill -KILL "${BARE_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT INT TERM

"$KIT/install.sh"
cd "$ROOT"
./dev deps
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked --bin flowgate --example bare_pingora --example bare_hyper >&2

# flowgate in front of the kit's nginx upstream, which the kit's run.sh starts (benches/lib.sh).
UPSTREAM_PORT=18080
source "$ROOT/benches/lib.sh"
start_flowgate '    headers: default
    skip_auth: ["^/static/"]'
BARE_PINGORA_ADDR=127.0.0.1:18190 ./target/release/examples/bare_pingora > "$WORK/bare.log" 2>&1 &
BARE_PID=$!
disown "$BARE_PID"   # killed at exit without a job notice
BARE_HYPER_ADDR=127.0.0.1:18191 ./target/release/examples/bare_hyper > "$WORK/hyper.log" 2>&1 &
HYPER_PID=$!
disown "$HYPER_PID"
BARE_HYPER_AUTH=1 BARE_HYPER_ADDR=127.0.0.1:18192 ./target/release/examples/bare_hyper > "$WORK/hyper-auth.out" 2>&1 &
HAUTH_PID=$!
disown "$HAUTH_PID"
for _ in $(seq 1 100); do [ -s "$WORK/hyper-auth.out" ] && break; sleep 0.1; done
HSESSION=$(head -n1 "$WORK/hyper-auth.out")

SESSION=$(login "$PORT" "$WORK/jar")
echo "# flowgate $(./target/release/flowgate --version) on 127.0.0.1:$PORT, logged in as bench" >&2

targets=(
  "flowgate=http://127.0.0.1:$PORT/@flowgate_session=$SESSION#$FG_PID"
  "flowgate-skip=http://127.0.0.1:$PORT/static/x#$FG_PID"
  "pingora-bare=http://127.0.0.1:18190/#$BARE_PID"
  "hyper-bare=http://127.0.0.1:18191/#$HYPER_PID"
  "hyper-auth=http://127.0.0.1:18192/@flowgate_session=$HSESSION#$HAUTH_PID"
)
if [ -n "${FLOWGATE_BASELINE:-}" ]; then
  BPORT=$((PORT + 1))
  mkdir -p "$WORK/base"
  sed -e "s#127.0.0.1:$PORT#127.0.0.1:$BPORT#" -e "s#$WORK/data#$WORK/base/data#" \
    -e "${FLOWGATE_BASELINE_SED:-}" "$WORK/flowgate.yaml" > "$WORK/base/flowgate.yaml"
  cp "$WORK/seed.yaml" "$WORK/base/seed.yaml"
  RUST_LOG=warn "$FLOWGATE_BASELINE" run -c "$WORK/base/flowgate.yaml" 2> "$WORK/base/flowgate.log" &
  BASE_PID=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$BPORT/.flowgate/health" >/dev/null 2>&1 && break; sleep 0.1; done
  BSESSION=$(login "$BPORT" "$WORK/base/jar")
  echo "# baseline $("$FLOWGATE_BASELINE" --version) on 127.0.0.1:$BPORT" >&2
  targets+=(
    "flowgate-base=http://127.0.0.1:$BPORT/@flowgate_session=$BSESSION#$BASE_PID"
    "flowgate-base-skip=http://127.0.0.1:$BPORT/static/x#$BASE_PID"
  )
fi

"$KIT/run.sh" "${targets[@]}"
