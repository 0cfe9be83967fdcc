# Shared by the bench scripts (benches/bench_env.sh, benches/soak.sh, benches/load.sh): install
# missing tools, start the peer kit's nginx upstream and a release flowgate in front of it. Source it after setting ROOT, KIT, WORK, PORT
# and UPSTREAM_PORT; the caller owns cleanup (kill $FG_PID and the pid in $WORK/upstream.pid).

# install_missing TOOL...: installs the tools (Debian packages of the same name) that are not on
# the PATH; without root it names them and exits 2.
install_missing() {
  local need=() t
  for t in "$@"; do command -v "$t" >/dev/null || need+=("$t"); done
  [ ${#need[@]} -gt 0 ] || return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${need[*]}; install them with: sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    exit 2
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# start_upstream: renders the kit's nginx upstream (127.0.0.1:18080, fixed by the kit's
# nginx-upstream.conf.in) into $WORK and starts it; exits 2 when the port is taken.
start_upstream() {
  if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$UPSTREAM_PORT/"; then
    echo "port $UPSTREAM_PORT is already in use (another bench running?)" >&2; exit 2
  fi
  sed -e "s#@RUN@#$WORK#g" -e "s#@KIT@#$KIT#g" "$KIT/nginx-upstream.conf.in" > "$WORK/nginx-upstream.conf"
  nginx -p "$WORK" -c "$WORK/nginx-upstream.conf" -e "$WORK/upstream-error.log"
}

# start_flowgate [APP_EXTRA]: seeds the user "bench" with a random PASSWORD, writes
# $WORK/flowgate.yaml (one app in front of the upstream, the shipped flows, brute-force limits
# off: the benches check many passwords from one address for one user; APP_EXTRA is appended to
# the app, indented; BENCH_MAIL replaces the `mail:` line, default file transport), starts ./target/release/flowgate and waits for its health check.
# Sets PASSWORD, FG_PID, BASE.
start_flowgate() {
  local extra=${1:-}
  local mail_line="mail: { transport: file }"
  [ -n "${BENCH_MAIL:-}" ] && mail_line=$BENCH_MAIL
  PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  cat > "$WORK/seed.yaml" <<YAML
users:
  - { username: bench, email: bench@example.test, name: Bench User, password: "$PASSWORD", groups: [bench] }
YAML
  cat > "$WORK/flowgate.yaml" <<YAML
listen: { http: "127.0.0.1:$PORT" }
data_dir: "$WORK/data"
identity: { seed: seed.yaml }
session: { ttl: 12h, idle_timeout: 1h }
$mail_line
# Every limiter off: the benches measure timing and load, the limits have tests of their own.
rate_limits: { password_per_ip: "off", password_per_username: "off", mail_per_address: "off", mail_per_ip: "off", signup_per_ip: "off" }
apps:
  - name: bench
    upstream: "http://127.0.0.1:$UPSTREAM_PORT"
$extra
include: ["$ROOT/config/flows/*.yaml"]
YAML
  RUST_LOG=warn ./target/release/flowgate run -c "$WORK/flowgate.yaml" 2> "$WORK/flowgate.log" &
  FG_PID=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/.flowgate/health" >/dev/null 2>&1 && break; sleep 0.1; done
  kill -0 "$FG_PID" 2>/dev/null || { echo "flowgate did not start" >&2; cat "$WORK/flowgate.log" >&2; exit 2; }
  BASE="http://127.0.0.1:$PORT"
}

# login PORT JAR: logs "bench" (start_flowgate's PASSWORD) in through the JSON executor and prints the session cookie value.
login() {
  local api="http://127.0.0.1:$1/.flowgate/api/v3/flows/executor/default-authentication-flow/" jar=$2
  curl -fs -c "$jar" -b "$jar" "$api" >/dev/null
  curl -fs -o /dev/null -c "$jar" -b "$jar" -H 'content-type: application/json' -d '{"uid_field":"bench"}' "$api"
  curl -fs -o /dev/null -c "$jar" -b "$jar" -H 'content-type: application/json' -d "{\"password\":\"$PASSWORD\"}" "$api"
  curl -fs -c "$jar" -b "$jar" "$api" | grep -q xak-flow-redirect || { echo "login on port $1 failed" >&2; exit 1; }
  local s; s=$(awk '$6=="flowgate_session"{print $7}' "$jar")
  [ -n "$s" ] || { echo "no session cookie from port $1" >&2; exit 1; }
  echo "$s"
}
