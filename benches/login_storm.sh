#!/usr/bin/env bash
# Login storm (PASS-4 and AVAIL-4 of docs/security.md): do concurrent logins, each an
# argon2id verification, stall proxied requests? A release flowgate runs in front of the peer
# kit's nginx upstream (see benches/bench_env.sh). A paced client (benches/http_probe.py probe)
# sends RATE requests/s over CONNS keep-alive connections to the authenticated route, measuring
# each request from its scheduled send time, first with nothing else running (idle), then while
# STORM clients log in through the JSON executor again and again. Prints p50/p90/p99 of both,
# the logins done, the p99 ratio storm/idle and PASS/FAIL against the target (ratio <= 2).
#
#   benches/login_storm.sh                         # 20 s per phase, 20 login clients
#   DURATION=60 STORM=40 benches/login_storm.sh
#
# Env: DURATION (20, seconds per phase), STORM (20 concurrent login clients), RATE (400 req/s),
#      CONNS (4), FLOWGATE_BENCH_PORT (18183). Exit 1 when the target is missed.
source "$(dirname "$0")/bench_env.sh"
DURATION=${DURATION:-20}; STORM=${STORM:-20}; RATE=${RATE:-400}; CONNS=${CONNS:-4}

SESSION=$($PROBE login "$PORT" bench "$PASSWORD")
echo "# flowgate $(./target/release/flowgate --version) on $BASE; $(nproc) cores; argon2id defaults;" \
  "probe $RATE req/s over $CONNS connections for ${DURATION}s per phase; storm of $STORM login clients" >&2
$PROBE probe "$PORT" "$SESSION" 3 "$RATE" "$CONNS" >/dev/null   # warm-up
IDLE=$($PROBE probe "$PORT" "$SESSION" "$DURATION" "$RATE" "$CONNS")

rm -f "$WORK/stop"
$PROBE storm "$PORT" bench "$PASSWORD" "$STORM" "$WORK/stop" > "$WORK/storm.out" &
STORM_PID=$!
sleep 2   # let every client reach its first password check
LOAD=$($PROBE probe "$PORT" "$SESSION" "$DURATION" "$RATE" "$CONNS")
touch "$WORK/stop"
wait "$STORM_PID"
STORM_OUT=$(cat "$WORK/storm.out")

field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
printf '%-22s %s\n' "idle" "$IDLE" "during login storm" "$LOAD" "login clients" "$STORM_OUT"
p99_idle=$(field p99_us "$IDLE"); p99_storm=$(field p99_us "$LOAD")
p50_idle=$(field p50_us "$IDLE"); p50_storm=$(field p50_us "$LOAD")
ratio=$(awk -v a="$p99_storm" -v b="$p99_idle" 'BEGIN{printf "%.2f", a/b}')
ratio50=$(awk -v a="$p50_storm" -v b="$p50_idle" 'BEGIN{printf "%.2f", a/b}')
errors=$(( $(field errors "$IDLE") + $(field errors "$LOAD") ))
echo "p50 ratio storm/idle: $ratio50"
echo "p99 ratio storm/idle: $ratio (target <= 2.00)"
if awk -v r="$ratio" 'BEGIN{exit !(r <= 2.0)}' && [ "$errors" -eq 0 ]; then echo PASS; else echo "FAIL (errors: $errors)"; exit 1; fi
