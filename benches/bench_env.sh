# Sourced by benches/login_storm.sh and benches/enum_timing.sh: builds a release flowgate, starts
# the peer kit's nginx upstream (127.0.0.1:18080, fixed by the kit's nginx-upstream.conf.in) and
# flowgate in front of it with the brute-force limits off, and stops both on exit.
# Sets ROOT, WORK, BASE, PORT, PASSWORD (of the seeded user "bench"), FG_PID.
# Needs: nginx, curl, python3 (root to install missing ones).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KIT=${PEERS_KIT:-$ROOT/../shared/bench/peers}
PORT=${FLOWGATE_BENCH_PORT:-18183}
UPSTREAM_PORT=18080
WORK=$(mktemp -d /tmp/flowgate-bench.XXXXXX)
chmod 755 "$WORK"   # nginx workers drop privileges and must reach their temp dirs
FG_PID=""
EXTRA_PIDS=()   # more processes the caller started (replicas, redis-server): stopped on exit too
bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  touch "$WORK/stop" 2>/dev/null || true
  [ -n "$FG_PID" ] && kill -TERM "$FG_PID" 2>/dev/null || true
  [ ${#EXTRA_PIDS[@]} -eq 0 ] || kill -TERM "${EXTRA_PIDS[@]}" 2>/dev/null || true
  [ -s "$WORK/upstream.pid" ] && kill -TERM "$(cat "$WORK/upstream.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$WORK/seed.yaml"
  echo "# work dir kept: $WORK (flowgate.log)" >&2
  exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

source "$ROOT/benches/lib.sh"
install_missing nginx curl python3
cd "$ROOT"
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked --bin flowgate >&2   # SKIP_BUILD=1 uses the binary as it is

start_upstream
start_flowgate
PROBE="python3 $ROOT/benches/http_probe.py"
