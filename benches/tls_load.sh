#!/usr/bin/env bash
# HTTPS side by side (issue 14 item 4): nginx terminating TLS (worker_processes auto, session
# cache and tickets on, HTTP/2) and flowgate's rustls listener, both in front of the peer kit's
# nginx upstream on 127.0.0.1:18080, with one self-signed P-256 certificate. For each, in
# interleaved rounds, with the server's CPU time (user + system of its processes, from /proc)
# divided by what it served:
#   h1-keepalive  wrk -t1 -c32 over kept-alive TLS connections (flowgate: a logged-in session);
#   h1-handshake  wrk -t1 -c32 with `Connection: close`: a full handshake per request;
#   resumed       openssl s_time -reuse -tls1_2: handshakes resuming one session, per second
#                 (over TLS 1.3 s_time does not wait for the tickets and never resumes);
#   h2            h2load -c32 -m10 over HTTP/2 (skipped without h2load: apt install nghttp2-client).
#
#   SKIP_BUILD=1 benches/tls_load.sh          # DURATION=5 ROUNDS=3
# Needs root for missing tools (wrk, openssl, nghttp2-client).
source "$(dirname "$0")/bench_env.sh"
DURATION=${DURATION:-5}; ROUNDS=${ROUNDS:-3}
install_missing wrk openssl
command -v h2load >/dev/null || install_missing nghttp2-client || true
TPORT=$((PORT + 2)); NPORT=18443
HZ=$(getconf CLK_TCK)

# One certificate for both, trusted by nobody (clients skip verification).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

# flowgate again, with an HTTPS listener beside the plain one (the plain one logs in).
kill -TERM "$FG_PID"; wait "$FG_PID" 2>/dev/null || true
sed -i "s#^listen: .*#listen: { http: \"127.0.0.1:$PORT\", https: { addr: \"127.0.0.1:$TPORT\", cert: \"$WORK/cert.pem\", key: \"$WORK/key.pem\" } }#" "$WORK/flowgate.yaml"
RUST_LOG=warn ./target/release/flowgate run -c "$WORK/flowgate.yaml" 2> "$WORK/flowgate.log" &
FG_PID=$!
for _ in $(seq 1 100); do curl -fsk "https://127.0.0.1:$TPORT/.flowgate/health" >/dev/null 2>&1 && break; sleep 0.1; done
SESSION=$($PROBE login "$PORT" bench "$PASSWORD")
COOKIE="flowgate_session=$SESSION"   # over HTTPS the cookie is __Host-flowgate_session
COOKIE_TLS="__Host-flowgate_session=$SESSION"

mkdir -p "$WORK/ngtls"
cat > "$WORK/ngtls/nginx.conf" <<NGINX
worker_processes auto;
pid $WORK/ngtls/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/ngtls/body; proxy_temp_path $WORK/ngtls/proxy;
    fastcgi_temp_path $WORK/ngtls/fcgi; uwsgi_temp_path $WORK/ngtls/uwsgi; scgi_temp_path $WORK/ngtls/scgi;
    keepalive_requests 1000000;
    upstream app { server 127.0.0.1:18080; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:$NPORT ssl http2;   # nginx 1.22 (Debian 12) spelling
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
        location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
NGINX
nginx -p "$WORK/ngtls" -c "$WORK/ngtls/nginx.conf" -e "$WORK/ngtls/error.log"
EXTRA_PIDS+=("$(cat "$WORK/ngtls/nginx.pid")")
sleep 0.5
curl -fsk -o /dev/null "https://127.0.0.1:$NPORT/" || { echo "nginx TLS proxy does not answer" >&2; exit 2; }
curl -fsk -o /dev/null -H "cookie: $COOKIE_TLS" "https://127.0.0.1:$TPORT/" || { echo "flowgate HTTPS does not let the session in" >&2; exit 2; }

ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
nginx_pids() { local m; m=$(cat "$WORK/ngtls/nginx.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }

declare -A RATE CPU
# run NAME KIND PIDS...: one timed run; records served/s and CPU µs per unit served.
run() {
  local name=$1 kind=$2; shift 2
  local pids="$*" url cookie out n secs t0 t1
  case $name in nginx*) url="https://127.0.0.1:$NPORT/"; cookie="x-bench: 1" ;;
                *) url="https://127.0.0.1:$TPORT/"; cookie="cookie: $COOKIE_TLS" ;; esac
  t0=$(ticks $pids)
  case $kind in
    h1-keepalive) out=$(wrk -t1 -c32 -d"${DURATION}s" -H "$cookie" "$url"); n=$(echo "$out" | awk '/requests in/{print $1}'); secs=$DURATION ;;
    h1-handshake) out=$(wrk -t1 -c32 -d"${DURATION}s" -H "$cookie" -H "Connection: close" "$url"); n=$(echo "$out" | awk '/requests in/{print $1}'); secs=$DURATION ;;
    resumed) hp=${url#https://}; hp=${hp%/}
             out=$(openssl s_time -connect "$hp" -reuse -tls1_2 -time "$DURATION" 2>/dev/null); n=$(echo "$out" | awk '/connections in/{print $1; exit}'); secs=$DURATION ;;
    h2) out=$(h2load -c32 -m10 -D "$DURATION" -H "$cookie" "$url" 2>&1); n=$(echo "$out" | awk '/^requests:/{print $8}'); secs=$DURATION ;;
  esac
  t1=$(ticks $pids)
  [ "${n:-0}" -gt 0 ] || { echo "# $name $kind: nothing served" >&2; return 0; }
  RATE[$name/$kind]="${RATE[$name/$kind]:-} $(awk -v n="$n" -v s="$secs" 'BEGIN{printf "%.0f", n / s}')"
  CPU[$name/$kind]="${CPU[$name/$kind]:-} $(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN{printf "%.1f", d / hz * 1e6 / n}')"
}

kinds=(h1-keepalive h1-handshake resumed)
command -v h2load >/dev/null && kinds+=(h2)
echo "# $(./target/release/flowgate --version); 2 cores; ${ROUNDS} rounds of ${DURATION}s; load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
  for k in "${kinds[@]}"; do
    run nginx-tls "$k" $(nginx_pids); sleep 1
    run flowgate-tls "$k" "$FG_PID"; sleep 1
  done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END{if(NR==0){print 0}else if(NR%2){print a[(NR+1)/2]}else{print a[NR/2]}}'; }
printf "%-14s %14s %14s %14s %14s %10s\n" kind "nginx /s" "flowgate /s" "nginx µs" "flowgate µs" "cpu ×nginx"
for k in "${kinds[@]}"; do
  nr=$(echo "${RATE[nginx-tls/$k]:-}" | median); fr=$(echo "${RATE[flowgate-tls/$k]:-}" | median)
  nc=$(echo "${CPU[nginx-tls/$k]:-}" | median); fc=$(echo "${CPU[flowgate-tls/$k]:-}" | median)
  printf "%-14s %14s %14s %14s %14s %10s\n" "$k" "$nr" "$fr" "$nc" "$fc" "$(awk -v a="$fc" -v b="$nc" 'BEGIN{printf "%.2f", (b>0)?a/b:0}')"
done
echo "# per unit: a request (h1, h2) or a handshake (resumed); flowgate's h1/h2 rows carry a logged-in session"
