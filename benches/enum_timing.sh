#!/usr/bin/env bash
# Username enumeration by timing (ENUM-2 of docs/security.md): the median time of TRIES
# identification+password attempts (wrong password) for an existing user and for unknown users
# must differ by less than 10 %. Unknown users get a full argon2id verification against a dummy
# hash, so both cost one hash. Attempts alternate between the two kinds so that drift hits both.
# Each attempt is a fresh flow: POST the username, GET the password stage, POST the password;
# timed from the first POST to the answer of the last (benches/http_probe.py enum).
#
#   benches/enum_timing.sh              # TRIES=50
# Env: TRIES (50), FLOWGATE_BENCH_PORT (18183). Exit 1 when the difference is 10 % or more.
source "$(dirname "$0")/bench_env.sh"
TRIES=${TRIES:-50}
echo "# flowgate $(./target/release/flowgate --version) on $BASE; $(nproc) cores; argon2id defaults; $TRIES tries each" >&2
OUT=$($PROBE enum "$PORT" bench "$TRIES")
echo "$OUT"
diff=$(sed -n 's/.*difference_pct=\([0-9.]*\).*/\1/p' <<<"$OUT")
if awk -v d="$diff" 'BEGIN{exit !(d < 10)}'; then echo "PASS (difference $diff % < 10 %)"; else echo "FAIL (difference $diff % >= 10 %)"; exit 1; fi
