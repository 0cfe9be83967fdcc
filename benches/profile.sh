#!/usr/bin/env bash
# CPU profiles of flowgate and of bare pingora under the same load (issue 14): each target gets
# wrk (-t1 -c32) for DURATION seconds while `perf record` samples its process (DWARF call
# graphs: the release profile keeps debug info), then the stacks are folded and drawn as flame
# graphs with inferno, and the top self costs are printed.
#
#   SKIP_BUILD=1 benches/profile.sh             # DURATION=8 FREQ=499 OUT=docs/profiles
# Targets: flowgate's authenticated route (a logged-in session), its skip-auth route, and
# benches/baseline/bare_pingora.rs (pingora's default proxy, nothing else), all in front of the
# peer kit's nginx upstream. Needs root (perf), wrk, perf, inferno (`cargo install inferno`).
source "$(dirname "$0")/bench_env.sh"
DURATION=${DURATION:-8}; FREQ=${FREQ:-499}; OUT=${OUT:-$ROOT/docs/profiles}
install_missing wrk
command -v perf >/dev/null || install_missing linux-perf
command -v inferno-flamegraph >/dev/null || { echo "inferno missing: cargo install inferno" >&2; exit 2; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked --example bare_pingora >&2
mkdir -p "$OUT"

kill -TERM "$FG_PID"; wait "$FG_PID" 2>/dev/null || true
start_flowgate '    skip_auth: ["^/static/"]'
SESSION=$($PROBE login "$PORT" bench "$PASSWORD")
BARE_PINGORA_ADDR=127.0.0.1:18190 ./target/release/examples/bare_pingora > "$WORK/bare.log" 2>&1 &
BARE_PID=$!
disown "$BARE_PID"   # killed at exit without a job notice
EXTRA_PIDS+=("$BARE_PID")
trap 'kill -KILL "$BARE_PID" 2>/dev/null || true; bench_cleanup' EXIT
sleep 0.5

# profile NAME PID URL [HEADER]
profile() {
  local name=$1 pid=$2 url=$3 header=${4:-X-Bench: 1}
  wrk -t1 -c32 -d2s -H "$header" "$url" >/dev/null   # warm: pools, caches
  perf record -q -F "$FREQ" -g --call-graph dwarf,16384 -p "$pid" -o "$WORK/$name.data" -- sleep "$DURATION" 2>/dev/null &
  local perf_pid=$!
  wrk -t1 -c32 -d"$((DURATION - 1))s" -H "$header" "$url" | awk -v n="$name" '/Requests\/sec/{print "# " n ": " $2 " req/s under perf"}'
  wait "$perf_pid" || true
  perf script -i "$WORK/$name.data" 2>/dev/null | inferno-collapse-perf > "$WORK/$name.folded"
  inferno-flamegraph --minwidth 0.3 --title "$name: wrk -t1 -c32, perf -F $FREQ" < "$WORK/$name.folded" > "$OUT/$name.svg"
  echo "## $name: top self cost (% of its samples)"
  perf report -i "$WORK/$name.data" --no-children -g none --percent-limit 0.7 --sort dso,symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | sed -E 's/ +$//' | cut -c1-160 || true
}

profile flowgate-authenticated "$FG_PID" "http://127.0.0.1:$PORT/" "Cookie: flowgate_session=$SESSION"
profile flowgate-skip-auth "$FG_PID" "http://127.0.0.1:$PORT/static/x"
profile pingora-bare "$BARE_PID" "http://127.0.0.1:18190/"
echo "# flame graphs in $OUT"
