#!/usr/bin/env bash
# Enumeration by timing (ENUM-2 and ENUM-4 of docs/security.md).
#
# 1. Login: the median time of TRIES identification+password attempts (wrong password) for an
#    existing user and for unknown users must differ by less than 10 %. Unknown users get a full
#    argon2id verification against a dummy hash, so both cost one hash. Each attempt is a fresh
#    flow: POST the username, GET the password stage, POST the password; timed from the first
#    POST to the answer of the last (benches/http_probe.py enum).
# 2. Recovery: TRIES recovery attempts for the account's address and for unknown addresses;
#    each timed from the identification POST to the email stage's answer (where the mail is
#    handed over), then one resend. Run twice: with the file transport, and with a slow SMTP
#    relay (SMTP_DELAY_MS before each of its replies, ~6 replies a mail), where a mail sent on
#    the request path would show as a ratio far above 1 (benches/http_probe.py recovery).
#    The answers (bodies, identifier taken out) must be the same for both kinds.
# Attempts alternate between the two kinds so that drift hits both. Figures are ratios
# known/unknown of the medians.
#
#   benches/enum_timing.sh              # TRIES=50
# Env: TRIES (50), SMTP_DELAY_MS (50), FLOWGATE_BENCH_PORT (18183), SMTP_SINK_PORT (18025).
# Exit 1 when a login difference is 10 % or more, a recovery ratio is outside 0.9-1.1, or the
# recovery answers differ.
source "$(dirname "$0")/bench_env.sh"
TRIES=${TRIES:-50}
SMTP_DELAY_MS=${SMTP_DELAY_MS:-50}
SINK_PORT=${SMTP_SINK_PORT:-18025}
echo "# flowgate $(./target/release/flowgate --version) on $BASE; $(nproc) cores; argon2id defaults; $TRIES tries each" >&2
status=0
OUT=$($PROBE enum "$PORT" bench "$TRIES")
echo "login: $OUT"
diff=$(sed -n 's/.*difference_pct=\([0-9.]*\).*/\1/p' <<<"$OUT")
if awk -v d="$diff" 'BEGIN{exit !(d < 10)}'; then echo "PASS login (difference $diff % < 10 %)"; else echo "FAIL login (difference $diff % >= 10 %)"; status=1; fi

check_recovery() { # LABEL OUTPUT
  local label=$1 out=$2 r
  echo "recovery ($label): $out"
  for r in $(sed -n 's/.*first_ratio=\([0-9.]*\).*resend_ratio=\([0-9.]*\).*/\1 \2/p' <<<"$out"); do
    if ! awk -v r="$r" 'BEGIN{exit !(r > 0.9 && r < 1.1)}'; then echo "FAIL recovery ($label): ratio $r outside 0.9-1.1"; status=1; fi
  done
  if grep -q "same_answers=yes" <<<"$out"; then echo "PASS recovery ($label) answers alike"; else echo "FAIL recovery ($label): the answers differ"; status=1; fi
}
check_recovery "file transport" "$($PROBE recovery "$PORT" bench@example.test "$TRIES")"

# Again behind a slow SMTP relay.
$PROBE smtp "$SINK_PORT" "$SMTP_DELAY_MS" &
SINK_PID=$!
trap 'rc=$?; kill $SINK_PID 2>/dev/null || true; set +e; (exit $rc); bench_cleanup' EXIT
kill -TERM "$FG_PID"; wait "$FG_PID" 2>/dev/null || true
BENCH_MAIL="mail: { transport: smtp, host: 127.0.0.1, port: $SINK_PORT, security: none, timeout: 10s }"
start_flowgate
check_recovery "SMTP relay, ${SMTP_DELAY_MS} ms a reply" "$($PROBE recovery "$PORT" bench@example.test "$TRIES")"
exit $status
