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
bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  touch "$WORK/stop" 2>/dev/null || true
  [ -n "$FG_PID" ] && kill -TERM "$FG_PID" 2>/dev/null || true
  [ -s "$WORK/upstream.pid" ] && kill -TERM "$(cat "$WORK/upstream.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$WORK/seed.yaml"
  echo "# work dir kept: $WORK (flowgate.log)" >&2
  exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need=()
for t in nginx curl python3; do command -v "$t" >/dev/null || need+=("$t"); done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 2
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cd "$ROOT"
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked --bin flowgate >&2   # SKIP_BUILD=1 uses the binary as it is

if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$UPSTREAM_PORT/"; then
  echo "port $UPSTREAM_PORT is already in use (another bench running?)" >&2; exit 2
fi
sed -e "s#@RUN@#$WORK#g" -e "s#@KIT@#$KIT#g" "$KIT/nginx-upstream.conf.in" > "$WORK/nginx-upstream.conf"
nginx -p "$WORK" -c "$WORK/nginx-upstream.conf" -e "$WORK/upstream-error.log"

PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
cat > "$WORK/seed.yaml" <<YAML
users:
  - { username: bench, email: bench@example.test, name: Bench User, password: "$PASSWORD", groups: [bench] }
YAML
# Many password checks from one address and for one user: the brute-force limits are off.
cat > "$WORK/flowgate.yaml" <<YAML
listen: { http: "127.0.0.1:$PORT" }
data_dir: "$WORK/data"
identity: { seed: seed.yaml }
session: { ttl: 12h, idle_timeout: 1h }
mail: { transport: file }
rate_limits: { password_per_ip: "off", password_per_username: "off" }
apps:
  - name: bench
    upstream: "http://127.0.0.1:$UPSTREAM_PORT"
include: ["$ROOT/config/flows/*.yaml"]
YAML
RUST_LOG=warn ./target/release/flowgate run -c "$WORK/flowgate.yaml" 2> "$WORK/flowgate.log" &
FG_PID=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/.flowgate/health" >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 "$FG_PID" 2>/dev/null || { echo "flowgate did not start" >&2; cat "$WORK/flowgate.log" >&2; exit 2; }
BASE="http://127.0.0.1:$PORT"
PROBE="python3 $ROOT/benches/http_probe.py"
