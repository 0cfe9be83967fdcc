#!/usr/bin/env bash
# Soak test: a release flowgate in front of the peer kit's nginx upstream (127.0.0.1:18080, the
# kit's nginx-upstream.conf.in), wrk on an authenticated route for DURATION while a second client
# logs in and out continuously through the JSON executor. flowgate's RSS (VmRSS) is sampled every
# 5 s into WORK/rss.csv. Prints throughput, non-2xx by status, socket errors, login/logout
# cycles, RSS at start / after warm-up / at the end, and PASS/FAIL against the targets:
#   - zero non-2xx responses on the authenticated route
#   - RSS growth after warm-up under 5 %
# Exits 1 when a target is missed (2 when the run itself is invalid).
#
#   benches/soak.sh                          # 10 minutes
#   DURATION=60 WARMUP=15 benches/soak.sh    # quick check
#
# Env: DURATION (600, seconds), WARMUP (60, seconds), CONNS (32), THREADS (2), SAMPLE (5, seconds),
#      WINDOW (60, seconds), FLOWGATE_SOAK_PORT (18181), SOAK_DIR (work dir; default a new temporary
#      directory, kept).
# RSS moves by ~20 MiB between a sample taken during a password check and one taken between two
# (argon2id's 19 MiB block is allocated and freed per check, and mimalloc returns it), so the growth target is judged on the median
# of the samples in the WINDOW seconds after warm-up against the median of the last WINDOW
# seconds; the single samples at those points and their growth are printed too.
# Needs root to install wrk, nginx, curl and cmake when they are missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KIT=${PEERS_KIT:-$ROOT/../shared/bench/peers}
DURATION=${DURATION:-600}; WARMUP=${WARMUP:-60}; CONNS=${CONNS:-32}; THREADS=${THREADS:-2}
SAMPLE=${SAMPLE:-5}; WINDOW=${WINDOW:-60}
DURATION=${DURATION%s}; WARMUP=${WARMUP%s}
PORT=${FLOWGATE_SOAK_PORT:-18181}
UPSTREAM_PORT=18080   # fixed by the kit's nginx-upstream.conf.in
WORK=${SOAK_DIR:-$(mktemp -d /tmp/flowgate-soak.XXXXXX)}
mkdir -p "$WORK"
rm -f "$WORK/upstream.pid" "$WORK/stop"   # a reused SOAK_DIR must not point cleanup at a stale pid
chmod 755 "$WORK"     # nginx workers drop privileges and must reach their temp dirs
[ "$WARMUP" -lt "$DURATION" ] || { echo "WARMUP ($WARMUP) must be below DURATION ($DURATION)" >&2; exit 2; }

# --- cleanup: everything started here is stopped on exit, error or Ctrl-C -----------------------
FG_PID=""; WRK_PID=""; LOOP_PID=""; SAMPLER_PID=""
stop_pid() {   # stop_pid PID: TERM the process and the children it has at that moment
  local pid=$1 kids
  [ -n "$pid" ] || return 0
  kids=$(pgrep -P "$pid" 2>/dev/null || true)
  kill -TERM "$pid" $kids 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  touch "$WORK/stop" 2>/dev/null || true
  stop_pid "$WRK_PID"; stop_pid "$LOOP_PID"; stop_pid "$SAMPLER_PID"; stop_pid "$FG_PID"
  [ -s "$WORK/upstream.pid" ] && kill -TERM "$(cat "$WORK/upstream.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$WORK/seed.yaml"   # holds the bench password
  echo "# work dir kept: $WORK (rss.csv, wrk.out, loop-failures.log, loop.log, flowgate.log)" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- install and build ---------------------------------------------------------------------------
source "$ROOT/benches/lib.sh"
install_missing wrk nginx curl cmake   # cmake: pingora's zlib-ng
cd "$ROOT"
cargo build --release --locked --bin flowgate >&2

# --- upstream and flowgate (benches/lib.sh) -------------------------------------------------------
start_upstream
# The login loop checks one password per cycle, far above the default brute-force limits, which
# lib.sh turns off. The kit's upstream echoes these two headers on /whoami, which the loop checks.
start_flowgate "    headers: { user: X-Remote-User, email: X-Remote-Email }"
API="$BASE/.flowgate/api/v3/flows/executor/default-authentication-flow/"
# login JAR: walks the default authentication flow (identification → password →
# authenticator_validate, skipped without devices → user_login) and prints the session cookie.
# Each step must return the expected component; returns non-zero naming the step that failed.
login() {
  local jar=$1 body
  body=$(curl -sS --max-time 10 -c "$jar" -b "$jar" "$API") || { echo "start: curl failed"; return 1; }
  [[ $body == *ak-stage-identification* ]] || { echo "start: ${body:0:200}"; return 1; }
  # A POST answers 302 back to the executor; -L follows it with a GET (curl's 302 rule).
  body=$(curl -sSL --max-time 10 -c "$jar" -b "$jar" -H 'content-type: application/json' \
    -d '{"uid_field":"bench"}' "$API") || { echo "identification: curl failed"; return 1; }
  [[ $body == *ak-stage-password* ]] || { echo "identification: ${body:0:200}"; return 1; }
  body=$(curl -sSL --max-time 10 -c "$jar" -b "$jar" -H 'content-type: application/json' \
    -d "{\"password\":\"$PASSWORD\"}" "$API") || { echo "password: curl failed"; return 1; }
  [[ $body == *xak-flow-redirect* ]] || { echo "password: ${body:0:200}"; return 1; }
  awk '$6=="flowgate_session"{print $7}' "$jar"
}
SESSION=$(login "$WORK/wrk-jar") || { echo "login for wrk failed: $SESSION" >&2; cat "$WORK/flowgate.log" >&2; exit 2; }
[ -n "$SESSION" ] || { echo "no session cookie" >&2; exit 2; }
check=$(curl -s --max-time 5 -H "Cookie: flowgate_session=$SESSION" "$BASE/whoami")
[[ $check == *"user=[bench]"* ]] || { echo "authenticated route check failed: $check" >&2; exit 2; }

# --- the login/logout client ---------------------------------------------------------------------
# One client with one cookie jar (like a browser): log in, prove the session works on the
# authenticated route, GET /logout, prove the old session no longer does. Counters go to a file.
login_loop() {
  local jar="$WORK/loop-jar" ok=0 fail=0 sess why code
  while [ ! -e "$WORK/stop" ]; do
    why=""
    if ! sess=$(login "$jar"); then why="login $sess"
    elif [ -z "$sess" ]; then why="login: no session cookie"
    elif code=$(curl -s -o "$WORK/loop-body" -w '%{http_code}' --max-time 10 -H "Cookie: flowgate_session=$sess" "$BASE/whoami"); \
         [ "$code" != 200 ] || ! grep -q 'user=\[bench\]' "$WORK/loop-body"; then why="whoami after login: $code"
    elif code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -c "$jar" -b "$jar" "$BASE/logout"); \
         [ "$code" != 302 ] && [ "$code" != 200 ]; then why="logout: $code"
    elif code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Cookie: flowgate_session=$sess" "$BASE/whoami"); \
         [ "$code" = 200 ]; then why="old session still valid after logout"
    fi
    if [ -z "$why" ]; then ok=$((ok + 1)); else
      fail=$((fail + 1))
      echo "$(date +%T) cycle $((ok + fail)): $why" >> "$WORK/loop-failures.log"
      [ -e "$WORK/stop" ] || sleep 0.2
    fi
    echo "$ok $fail" > "$WORK/cycles.tmp" && mv "$WORK/cycles.tmp" "$WORK/cycles"
  done
}

# --- RSS sampler ---------------------------------------------------------------------------------
T0=$(date +%s.%N)
sample() {   # one CSV row: elapsed_s,rss_kib,hwm_kib,threads,cycles_ok,cycles_failed
  local t rss hwm thr c
  t=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  read -r rss hwm thr < <(awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} /^Threads:/{t=$2} END{print r, h, t}' "/proc/$FG_PID/status")
  c=$(cat "$WORK/cycles" 2>/dev/null || echo "0 0")
  echo "$t,$rss,$hwm,$thr,${c% *},${c#* }"
}
sampler() {
  while [ ! -e "$WORK/stop" ]; do sleep "$SAMPLE"; [ -e "$WORK/stop" ] || sample >> "$WORK/rss.csv"; done
}

# --- wrk with a status-counting script -----------------------------------------------------------
cat > "$WORK/count-status.lua" <<'LUA'
-- Counts non-2xx responses by status per thread and prints them at the end
-- (wrk's own "Non-2xx or 3xx responses" line lumps them together).
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = {} end
function response(status, headers, body)
  if status < 200 or status > 299 then bad[status] = (bad[status] or 0) + 1 end
end
function done(summary, latency, requests)
  local total, by = 0, {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("bad")) do by[status] = (by[status] or 0) + n; total = total + n end
  end
  local parts = {}
  for status, n in pairs(by) do table.insert(parts, string.format("%d=%d", status, n)) end
  table.sort(parts)
  print(string.format("SOAK non2xx_total=%d by_status=%s", total, #parts > 0 and table.concat(parts, ",") or "none"))
  print(string.format("SOAK requests=%d errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
end
LUA

rm -f "$WORK/stop" "$WORK/cycles" "$WORK/loop-failures.log"
echo "elapsed_s,rss_kib,hwm_kib,threads,cycles_ok,cycles_failed" > "$WORK/rss.csv"
sample >> "$WORK/rss.csv"
echo "# flowgate $(./target/release/flowgate --version) on $BASE, upstream nginx on :$UPSTREAM_PORT" >&2
echo "# wrk -t$THREADS -c$CONNS -d${DURATION}s on $BASE/ (authenticated), login/logout loop alongside," \
  "warm-up ${WARMUP}s, RSS every ${SAMPLE}s; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
login_loop 2> "$WORK/loop.log" & LOOP_PID=$!
sampler & SAMPLER_PID=$!
wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -H "Cookie: flowgate_session=$SESSION" \
  -s "$WORK/count-status.lua" "$BASE/" > "$WORK/wrk.out" 2>&1 & WRK_PID=$!
wait "$WRK_PID" || { echo "wrk failed:" >&2; cat "$WORK/wrk.out" >&2; exit 2; }
WRK_PID=""
sample >> "$WORK/rss.csv"   # the end row, taken the moment wrk stops
touch "$WORK/stop"
wait "$LOOP_PID" 2>/dev/null || true; LOOP_PID=""
wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
kill -0 "$FG_PID" 2>/dev/null || { echo "flowgate died during the run" >&2; tail -20 "$WORK/flowgate.log" >&2; exit 2; }

# --- summary -------------------------------------------------------------------------------------
W=$WORK/wrk.out
rps=$(awk '/^Requests\/sec:/{print $2}' "$W")
total=$(sed -n 's/.*SOAK requests=\([0-9]*\).*/\1/p' "$W")
non2xx=$(sed -n 's/.*SOAK non2xx_total=\([0-9]*\).*/\1/p' "$W")
by_status=$(sed -n 's/.*by_status=\(.*\)$/\1/p' "$W")
sockerr=$(sed -n 's/.*\(errors_connect=.*\)$/\1/p' "$W" | sed 's/errors_//g')
p50=$(awk '$1=="50%"{print $2}' "$W"); p99=$(awk '$1=="99%"{print $2}' "$W")
read -r cyc_ok cyc_fail < "$WORK/cycles" || { cyc_ok=0; cyc_fail=0; }
rss_start=$(awk -F, 'NR==2{print $2}' "$WORK/rss.csv")
read -r warm_t rss_warm < <(awk -F, -v w="$WARMUP" 'NR>1 && $1>=w {print $1, $2; exit}' "$WORK/rss.csv")
read -r end_t rss_end hwm_end < <(awk -F, 'END{print $1, $2, $3}' "$WORK/rss.csv")
pct() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%+.2f", (b-a)*100/a}'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f MiB", k/1024}'; }
# window FROM TO: "median min max count" of rss_kib over samples with FROM <= elapsed < TO
window() {
  awk -F, -v f="$1" -v t="$2" 'NR>1 && $1>=f && $1<t {print $2}' "$WORK/rss.csv" | sort -n |
    awk '{a[NR]=$1} END{if(NR==0){print 0,0,0,0}else{m=(NR%2)?a[(NR+1)/2]:int((a[NR/2]+a[NR/2+1])/2); print m,a[1],a[NR],NR}}'
}
win=$(awk -v w="$WINDOW" -v d="$DURATION" -v u="$WARMUP" 'BEGIN{x=(d-u)/2; print (w<x)?w:x}')
read -r med_warm min_warm max_warm n_warm < <(window "$WARMUP" "$(awk -v u="$WARMUP" -v w="$win" 'BEGIN{print u+w}')")
read -r med_end min_end max_end n_end < <(window "$(awk -v d="$DURATION" -v w="$win" 'BEGIN{print d-w}')" 1e9)
growth_point=$(pct "$rss_warm" "$rss_end")
growth=$(pct "$med_warm" "$med_end")

t1=PASS; [ "${non2xx:-x}" = 0 ] || t1=FAIL
t2=PASS; [ "$n_warm" -gt 0 ] && [ "$n_end" -gt 0 ] && awk -v g="$growth" 'BEGIN{exit !(g < 5)}' || t2=FAIL
line() { printf '%-34s %s\n' "$1" "$2"; }
echo "== flowgate soak: ${DURATION}s, warm-up ${WARMUP}s, wrk -t$THREADS -c$CONNS, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at end"
line "wrk, authenticated route:" "$rps req/s, $total requests, p50 $p50, p99 $p99"
line "  non-2xx by status:" "${non2xx:-?} (${by_status:-?})"
line "  socket errors:" "${sockerr:-?}"
line "login/logout cycles:" "$cyc_ok done, $cyc_fail failed$( [ "$cyc_fail" = 0 ] || echo " (see $WORK/loop-failures.log)")"
line "RSS start (t=0, before load):" "$(mib "$rss_start") ($rss_start KiB)"
line "RSS after warm-up (t=${warm_t}s):" "$(mib "$rss_warm") ($rss_warm KiB)"
line "RSS end (t=${end_t}s):" "$(mib "$rss_end") ($rss_end KiB); peak (VmHWM) $(mib "$hwm_end")"
line "RSS growth, single samples:" "${growth_point} % (end vs after warm-up)"
line "RSS median, ${win}s after warm-up:" "$(mib "$med_warm") ($n_warm samples, $(mib "$min_warm") .. $(mib "$max_warm"))"
line "RSS median, last ${win}s:" "$(mib "$med_end") ($n_end samples, $(mib "$min_end") .. $(mib "$max_end"))"
line "RSS growth after warm-up:" "${growth} % (medians)"
line "target zero non-2xx:" "$t1"
line "target RSS growth < 5 %:" "$t2"
echo "samples: $WORK/rss.csv"
if [ "${total:-0}" = 0 ] || [ "$cyc_ok" = 0 ]; then echo "INVALID RUN: no requests or no login cycle completed"; exit 2; fi
[ "$t1" = PASS ] && [ "$t2" = PASS ] || exit 1
