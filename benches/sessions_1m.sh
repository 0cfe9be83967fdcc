#!/usr/bin/env bash
# One million live sessions in `session.store: local` (issue 12, SPEC §9): memory and throughput.
#
# A release flowgate (benches/bench_env.sh: the peer kit's nginx upstream, the seeded user
# "bench") logs "bench" in once and is stopped; its sessions.db is copied for a second instance,
# then the session row of that login is copied under fresh random ids (what flowgate's own ids
# look like, keyed by their SHA-256 as flowgate keys them) until the first database holds
# SESSIONS live sessions and the second SMALL. Both instances are started again on their
# databases (a restart keeps sessions: they are read back on first use), every session of each is
# requested once (wrk, benches/session_ids.lua MODE=walk) so that all of them sit in the moka
# cache, and then:
#   - VmRSS of each instance is read from /proc (target: ≤ 300 MB with 1M sessions);
#   - both are timed in interleaved rounds (target: req/s with 1M ≥ 0.95× with 1k), with CPU µs
#     per request of flowgate and of wrk from /proc/PID/stat and GNU time. "uniform": the requests
#     go round a shuffled copy of the instance's ids (MODE=cycle), so every session is used
#     equally and flowgate meets them in an order unrelated to the one they were loaded (and
#     allocated) in, while wrk reads its list front to back: picking from a million-entry Lua
#     table at random cost wrk 2.5 µs more per request than from a thousand, on the same two cores
#     as flowgate, which is the load generator's cost, not the gateway's. "working set": nine
#     requests in ten on a tenth of the sessions, picked at random (MODE=hot).
# Every session belongs to the one user "bench" (the user cache holds one identity, and the
# sessions share one copy of the identity as at login: memory per distinct user is not measured
# here), and each copy gets a sign-on id of its own, as after a million separate logins.
#
#   benches/sessions_1m.sh                      # SESSIONS=1000000 SMALL=1000 DURATION=10 ROUNDS=3
#   SKIP_BUILD=1 SESSIONS=200000 benches/sessions_1m.sh
# Env: SESSIONS, SMALL, DURATION (s), ROUNDS, CONNS (32). Exit 1 when a target is missed.
source "$(dirname "$0")/bench_env.sh"
SESSIONS=${SESSIONS:-1000000}; SMALL=${SMALL:-1000}; DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-3}; CONNS=${CONNS:-32}
install_missing wrk
# GNU time (`time` is also a shell keyword, so install_missing would not see it missing).
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
LUA="$ROOT/benches/session_ids.lua"
SPORT=$((PORT + 1))

SESSION=$($PROBE login "$PORT" bench "$PASSWORD")
kill -TERM "$FG_PID"; wait "$FG_PID" 2>/dev/null || true; FG_PID=""

# fill DB N IDS_FILE: copies the logged-in session's row under fresh ids until the database holds
# N sessions; writes every id (the original one first) to IDS_FILE.
fill() {
  python3 - "$1" "$2" "$3" "$SESSION" <<'PY'
import base64, hashlib, json, os, sqlite3, sys
db, n, out, first = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = sqlite3.connect(db)
key = hashlib.sha256(first.encode()).hexdigest()
row = c.execute("SELECT record FROM sessions WHERE key = ?", (key,)).fetchone()
if row is None:
    sys.exit("the login's session is not in " + db)
record = json.loads(row[0])
if not record.get("auth", {}).get("sign_on"):
    sys.exit("the login's session has no sign-on id")
with open(out, "w") as f:
    f.write(first + "\n")
    def rows():
        for _ in range(n - 1):
            sid = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
            f.write(sid + "\n")
            record["auth"]["sign_on"] = os.urandom(16).hex()
            yield (hashlib.sha256(sid.encode()).hexdigest(), json.dumps(record), key)
    c.executemany("INSERT INTO sessions (key, user_id, record, expires_ms, idle_ms, last_seen_ms) "
                  "SELECT ?, user_id, ?, expires_ms, idle_ms, last_seen_ms FROM sessions WHERE key = ?", rows())
    c.commit()
print(c.execute("SELECT count(*) FROM sessions WHERE user_id IS NOT NULL").fetchone()[0])
PY
}

mkdir -p "$WORK/small"
cp -r "$WORK/data" "$WORK/small/data"
t0=$(date +%s.%N)
BIG_N=$(fill "$WORK/data/sessions.db" "$SESSIONS" "$WORK/ids-big.txt")
SMALL_N=$(fill "$WORK/small/data/sessions.db" "$SMALL" "$WORK/ids-small.txt")
echo "# filled: $BIG_N and $SMALL_N live sessions in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}') s" >&2

sed -e "s#127.0.0.1:$PORT#127.0.0.1:$SPORT#" -e "s#$WORK/data#$WORK/small/data#" "$WORK/flowgate.yaml" > "$WORK/small/flowgate.yaml"
cp "$WORK/seed.yaml" "$WORK/small/seed.yaml"

# start CONFIG LOG PORT: starts a release flowgate and waits for its health check; prints its pid.
start() {
  RUST_LOG=warn ./target/release/flowgate run -c "$1" > /dev/null 2> "$2" &
  local pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$3/.flowgate/health" >/dev/null 2>&1 && break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null || { echo "flowgate did not start" >&2; cat "$2" >&2; exit 2; }
  echo "$pid"
}
rss_mb() { awk '/^VmRSS/{printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
FG_PID=$(start "$WORK/flowgate.yaml" "$WORK/flowgate.log" "$PORT")
SMALL_PID=$(start "$WORK/small/flowgate.yaml" "$WORK/small/flowgate.log" "$SPORT")
EXTRA_PIDS+=("$SMALL_PID")
echo "# flowgate $(./target/release/flowgate --version); $(nproc) cores; RSS after restart: $(rss_mb "$FG_PID") MB ($BIG_N sessions on disk), $(rss_mb "$SMALL_PID") MB ($SMALL_N)" >&2

# walk PORT IDS: requests every session once (two wrk threads, each stops after its share and
# leaves a DONE file; wrk is then interrupted); fails unless every answer was a 200.
walk() {
  local out t0 t1 pid done=$WORK/walk-$1
  t0=$(date +%s.%N)
  IDS=$2 MODE=walk THREADS=2 DONE=$done wrk -t2 -c32 -d3600s -s "$LUA" "http://127.0.0.1:$1/" > "$done.out" &
  pid=$!
  until [ -e "$done.0" ] && [ -e "$done.1" ]; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  t1=$(date +%s.%N)
  kill -INT "$pid" 2>/dev/null; wait "$pid" || true
  out=$(grep SESSIONS "$done.out" || true)
  case "$out" in
    *" other=0") ;;
    *) echo "walk on :$1: ${out:-no summary} (every session must answer 200)" >&2; exit 1 ;;
  esac
  awk -v a="$t0" -v b="$t1" -v n="$(wc -l < "$2")" 'BEGIN{printf "%d sessions read back in %.1f s (%.0f/s)", n, b-a, n/(b-a)}'
}
W_BIG=$(walk "$PORT" "$WORK/ids-big.txt"); W_SMALL=$(walk "$SPORT" "$WORK/ids-small.txt")
shuf "$WORK/ids-big.txt" > "$WORK/ids-big-shuffled.txt"; shuf "$WORK/ids-small.txt" > "$WORK/ids-small-shuffled.txt"
echo "# first use after the restart: $W_BIG; $W_SMALL" >&2
sleep 3   # let the last-seen batches and moka's maintenance settle
RSS_BIG=$(rss_mb "$FG_PID"); RSS_SMALL=$(rss_mb "$SMALL_PID")
echo "# RSS with every session in memory: $RSS_BIG MB ($BIG_N sessions), $RSS_SMALL MB ($SMALL_N)" >&2

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
# Targets: "big" (every session in turn, shuffled), "hot" (the same instance, nine requests in ten within
# a tenth of its sessions) and "small".
declare -A RPS P50 P99 CPU WRK
TARGETS=(big hot small)
for r in $(seq 1 "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    p=$PORT; pid=$FG_PID; ids=$WORK/ids-big-shuffled.txt; mode=cycle
    [ $t = hot ] && mode=hot && ids=$WORK/ids-big.txt
    [ $t = small ] && p=$SPORT && pid=$SMALL_PID && ids=$WORK/ids-small-shuffled.txt
    c0=$(cpu_ticks "$pid")
    # The load generator's own CPU per request too: it shares the two cores.
    out=$(IDS=$ids MODE=$mode /usr/bin/time -f '%U %S' -o "$WORK/wrk-time" \
      wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$LUA" "http://127.0.0.1:$p/")
    c1=$(cpu_ticks "$pid")
    echo "$out" | grep -q "other=0" || { echo "round $r $t: $(echo "$out" | grep SESSIONS) (every request must get 200)" >&2; exit 1; }
    reqs=$(echo "$out" | awk '/requests in/{print $1}')
    RPS[$t]="${RPS[$t]:-} $(echo "$out" | awk '/Requests\/sec/{print $2}')"
    P50[$t]="${P50[$t]:-} $(echo "$out" | awk '$1=="50%"{print $2}')"
    P99[$t]="${P99[$t]:-} $(echo "$out" | awk '$1=="99%"{print $2}')"
    CPU[$t]="${CPU[$t]:-} $(awk -v d=$((c1 - c0)) -v hz="$HZ" -v r="$reqs" 'BEGIN{printf "%.1f", d / hz * 1e6 / r}')"
    WRK[$t]="${WRK[$t]:-} $(awk -v r="$reqs" '{printf "%.1f", ($1 + $2) * 1e6 / r}' "$WORK/wrk-time")"
    sleep 1
  done
done
RSS_AFTER=$(rss_mb "$FG_PID")
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END{if(NR%2){print a[(NR+1)/2]}else{print (a[NR/2]+a[NR/2+1])/2}}'; }
printf "%-24s %10s %10s %10s %10s %10s %10s\n" target "req/s" p50 p99 "cpu us/req" "wrk us/req" "rounds"
for t in "${TARGETS[@]}"; do
  case $t in big) n="$BIG_N, uniform" ;; hot) n="$BIG_N, 90% in 10%" ;; small) n="$SMALL_N, uniform" ;; esac
  printf "%-24s %10s %10s %10s %10s %10s %10s\n" "$n" "$(echo "${RPS[$t]}" | median)" "$(echo "${P50[$t]}" | tr ' ' '\n' | tail -n1)" \
    "$(echo "${P99[$t]}" | tr ' ' '\n' | tail -n1)" "$(echo "${CPU[$t]}" | median)" "$(echo "${WRK[$t]}" | median)" "$(echo "${RPS[$t]}" | xargs)"
done
ratio() { awk -v a="$(echo "${RPS[$1]}" | median)" -v b="$(echo "${RPS[small]}" | median)" 'BEGIN{printf "%.2f", a/b}'; }
cratio() { awk -v a="$(echo "${CPU[$1]}" | median)" -v b="$(echo "${CPU[small]}" | median)" 'BEGIN{printf "%.2f", a/b}'; }
echo "req/s vs $SMALL_N sessions: $(ratio hot) with $BIG_N (working set), $(ratio big) with $BIG_N (uniform; target >= 0.95)"
echo "CPU per request vs $SMALL_N sessions: $(cratio hot) (working set), $(cratio big) (uniform)"
echo "RSS: $RSS_BIG MB after every one of $BIG_N sessions was used, $RSS_AFTER MB after the timed runs (target <= 300); $RSS_SMALL MB with $SMALL_N"
fail=0
awk -v r="$(ratio big)" 'BEGIN{exit !(r >= 0.95)}' || { echo "target missed: throughput with $BIG_N sessions used uniformly"; fail=1; }
[ "$BIG_N" -lt 1000000 ] || { [ "$RSS_BIG" -le 300 ] && [ "$RSS_AFTER" -le 300 ]; } || { echo "target missed: RSS with $BIG_N sessions"; fail=1; }
exit $fail
