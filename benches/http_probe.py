#!/usr/bin/env python3
"""HTTP clients for benches/login_storm.sh and benches/enum_timing.sh (standard library only).

  http_probe.py login PORT USER PASSWORD
      logs in through the JSON executor, prints the session id
  http_probe.py probe PORT SESSION SECONDS RATE CONNS
      GET / with the session at RATE requests/s in total over CONNS keep-alive connections;
      latency is measured from each request's scheduled send time (no coordinated omission);
      prints one line: n=.. errors=.. p50_us=.. p90_us=.. p99_us=.. max_us=..
  http_probe.py storm PORT USER PASSWORD CLIENTS STOPFILE
      CLIENTS threads log in again and again (identification, password, login) until STOPFILE
      exists; prints: logins=.. failures=.. login_p50_ms=.. login_p99_ms=..
  http_probe.py enum PORT USER TRIES
      TRIES identification+password attempts with a wrong password for USER and for unknown
      users, alternating; prints the median time of each, in ms, and the difference in %
  http_probe.py recovery PORT IDENTIFIER TRIES
      TRIES recovery attempts for IDENTIFIER (an account with an address) and for unknown
      identifiers, alternating; each is timed from the identification POST to the answer of the
      email stage (where the mail is handed over), then one resend; prints medians in ms and
      the ratio known/unknown of each step
  http_probe.py revoke PORT_A,PORT_B,PORT_C USER PASSWORD ROUNDS
      ROUNDS times: log in on A, use the session on A and B, then log out on C while one client
      on A and one on B send requests with that session back to back; the time from the end of
      the logout on C to the first refusal on each replica is one sample; prints p50/p99/max in
      ms per replica and overall, and how many samples exceeded 100 ms
  http_probe.py smtp PORT DELAY_MS
      a minimal SMTP sink on 127.0.0.1:PORT that waits DELAY_MS before each reply (a slow
      relay) and discards what it receives
"""
import http.client
import json
import os
import statistics
import sys
import threading
import time

API = "/.flowgate/api/v3/flows/executor/default-authentication-flow/"


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


class Browser:
    """One keep-alive connection with a one-cookie jar."""

    def __init__(self, port):
        self.port = port
        self.cookie = None
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send(self, method, path, body=None):
        headers = {"accept": "application/json"}
        if self.cookie:
            headers["cookie"] = "flowgate_session=" + self.cookie
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=headers)
            r = self.conn.getresponse()
            payload = r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            raise
        for k, v in r.getheaders():
            if k.lower() == "set-cookie" and v.startswith("flowgate_session="):
                value = v.split(";", 1)[0].split("=", 1)[1]
                self.cookie = value or None
        return r.status, payload

    def login(self, user, password):
        """The default authentication flow over JSON; returns the session id or None."""
        self.cookie = None
        self.send("GET", API)
        self.send("POST", API, {"uid_field": user})
        self.send("GET", API)
        self.send("POST", API, {"password": password})
        status, body = self.send("GET", API)
        if b"xak-flow-redirect" not in body:
            return None
        return self.cookie


def cmd_login(port, user, password):
    sid = Browser(int(port)).login(user, password)
    if not sid:
        sys.exit("login failed")
    print(sid)


def cmd_probe(port, session, seconds, rate, conns):
    port, seconds, rate, conns = int(port), float(seconds), float(rate), int(conns)
    interval = conns / rate
    lat, errors, lock = [], [0], threading.Lock()
    t0 = time.perf_counter() + 0.05

    def worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start = t0 + k * interval / conns
        local, bad, i = [], 0, 0
        while True:
            scheduled = start + i * interval
            if scheduled >= t0 + seconds:
                break
            now = time.perf_counter()
            if scheduled > now:
                time.sleep(scheduled - now)
            try:
                conn.request("GET", "/", headers={"cookie": "flowgate_session=" + session})
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            local.append(time.perf_counter() - scheduled)
            i += 1
        with lock:
            lat.extend(local)
            errors[0] += bad

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    us = [x * 1e6 for x in lat]
    print(
        "n=%d errors=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f max_us=%.0f"
        % (len(us), errors[0], pct(us, 50), pct(us, 90), pct(us, 99), max(us) if us else 0)
    )


def cmd_storm(port, user, password, clients, stopfile):
    port, clients = int(port), int(clients)
    times, failures, lock = [], [0], threading.Lock()

    def worker():
        b = Browser(port)
        while not os.path.exists(stopfile):
            t = time.perf_counter()
            try:
                ok = b.login(user, password) is not None
            except (OSError, http.client.HTTPException):
                ok = False
            with lock:
                if ok:
                    times.append(time.perf_counter() - t)
                else:
                    failures[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = [x * 1e3 for x in times]
    print(
        "logins=%d failures=%d login_p50_ms=%.0f login_p99_ms=%.0f"
        % (len(ms), failures[0], pct(ms, 50), pct(ms, 99))
    )


def cmd_enum(port, user, tries):
    port, tries = int(port), int(tries)
    known, unknown = [], []

    def attempt(name):
        b = Browser(port)
        b.send("GET", API)
        t = time.perf_counter()
        b.send("POST", API, {"uid_field": name})
        b.send("GET", API)
        status, _ = b.send("POST", API, {"password": "certainly-not-the-password-%d" % i})
        took = time.perf_counter() - t
        if status not in (200, 400):
            sys.exit("unexpected status %d for %s (rate limited?)" % (status, name))
        return took * 1e3

    for i in range(3):  # warm-up: connections, page cache, the dummy hash
        attempt(user)
        attempt("warmup-nobody-%d" % i)
    for i in range(tries):
        pair = [(user, known), ("nobody-%d-%d" % (os.getpid(), i), unknown)]
        if i % 2:
            pair.reverse()
        for name, into in pair:
            into.append(attempt(name))
    mk, mu = statistics.median(known), statistics.median(unknown)
    print(
        "existing_median_ms=%.2f unknown_median_ms=%.2f difference_pct=%.1f existing_iqr_ms=%.2f-%.2f unknown_iqr_ms=%.2f-%.2f"
        % (mk, mu, abs(mk - mu) / min(mk, mu) * 100, pct(known, 25), pct(known, 75), pct(unknown, 25), pct(unknown, 75))
    )


RECOVERY_API = "/.flowgate/api/v3/flows/executor/default-recovery-flow/"


def cmd_recovery(port, identifier, tries):
    port, tries = int(port), int(tries)
    first = {"known": [], "unknown": []}
    resend = {"known": [], "unknown": []}
    bodies = {"known": set(), "unknown": set()}

    def attempt(name, kind):
        b = Browser(port)
        b.send("GET", RECOVERY_API)
        t = time.perf_counter()
        b.send("POST", RECOVERY_API, {"uid_field": name})
        status, body = b.send("GET", RECOVERY_API)
        t1 = time.perf_counter()
        s2, body2 = b.send("POST", RECOVERY_API, {})
        t2 = time.perf_counter()
        if status != 200 or s2 != 200:
            sys.exit("unexpected status %d/%d for %s (rate limited?)" % (status, s2, name))
        who = name.encode()
        bodies[kind].add((body.replace(who, b"X"), body2.replace(who, b"X")))
        return (t1 - t) * 1e3, (t2 - t1) * 1e3

    for i in range(3):  # warm-up
        attempt(identifier, "known")
        attempt("warmup-nobody-%d@example.test" % i, "unknown")
    for i in range(tries):
        pair = [(identifier, "known"), ("nobody-%d-%d@example.test" % (os.getpid(), i), "unknown")]
        if i % 2:
            pair.reverse()
        for name, kind in pair:
            a, b = attempt(name, kind)
            first[kind].append(a)
            resend[kind].append(b)
    same = bodies["known"] == bodies["unknown"]
    out = []
    for step, d in (("first", first), ("resend", resend)):
        mk, mu = statistics.median(d["known"]), statistics.median(d["unknown"])
        out.append("%s_known_median_ms=%.2f %s_unknown_median_ms=%.2f %s_ratio=%.3f" % (step, mk, step, mu, step, mk / mu))
    print(" ".join(out) + " same_answers=%s" % ("yes" if same else "no"))


def cmd_revoke(ports, user, password, rounds):
    a, b, c = (int(p) for p in ports.split(","))
    samples = {"A": [], "B": []}
    # From the start of the logout's first request: an upper bound (the session ends at one of
    # the logout's steps, which `samples` measures from the end of the last).
    bounds = []
    polls = []
    for r in range(int(rounds)):
        sid = Browser(a).login(user, password)
        if not sid:
            sys.exit("login on A failed")
        pollers = {"A": Browser(a), "B": Browser(b)}
        for name, br in pollers.items():
            br.cookie = sid
            status, _ = br.send("GET", "/")
            if status != 200:
                sys.exit(f"round {r}: the new session got {status} on {name}")
        refused = {}
        go = threading.Event()

        def poll(name, br):
            n = 0
            go.wait()
            deadline = time.perf_counter() + 5
            while time.perf_counter() < deadline:
                br.cookie = sid
                status, _ = br.send("GET", "/")
                n += 1
                if status != 200:
                    refused[name] = time.perf_counter()
                    break
            polls.append(n)

        threads = [threading.Thread(target=poll, args=kv) for kv in pollers.items()]
        for t in threads:
            t.start()
        go.set()
        # Log out on C: GET /logout, then follow the invalidation flow's redirects under
        # /.flowgate/ with the same cookie (as a browser would).
        conn = http.client.HTTPConnection("127.0.0.1", c, timeout=30)
        started = time.perf_counter()
        path = "/logout"
        for _ in range(6):
            conn.request("GET", path, headers={"cookie": "flowgate_session=" + sid, "accept": "text/html"})
            resp = conn.getresponse()
            resp.read()
            path = resp.getheader("location") or ""
            if resp.status not in (301, 302, 303, 307) or not path.startswith("/.flowgate/"):
                break
        conn.close()
        ended = time.perf_counter()
        for t in threads:
            t.join()
        for name in ("A", "B"):
            if name not in refused:
                sys.exit(f"round {r}: {name} still accepted the session 5 s after the logout on C")
            samples[name].append(max(0.0, refused[name] - ended) * 1e3)
            bounds.append((refused[name] - started) * 1e3)
    allms = samples["A"] + samples["B"]
    for name, xs in list(samples.items()) + [("all", allms)]:
        print(f"{name}: n={len(xs)} p50_ms={pct(xs, 50):.2f} p99_ms={pct(xs, 99):.2f} max_ms={max(xs):.2f}")
    print(f"from the logout's first request (upper bound): p50_ms={pct(bounds, 50):.2f} p99_ms={pct(bounds, 99):.2f} max_ms={max(bounds):.2f}")
    print(f"over_100ms={sum(1 for x in allms if x > 100)} polls_per_sample_p50={pct(polls, 50)}")


def cmd_smtp(port, delay_ms):
    import asyncio

    delay = int(delay_ms) / 1000.0

    async def session(reader, writer):
        async def reply(line):
            await asyncio.sleep(delay)
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        await reply("220 sink ESMTP")
        data = False
        while True:
            line = await reader.readline()
            if not line:
                break
            if data:
                if line in (b".\r\n", b".\n"):
                    data = False
                    await reply("250 queued")
                continue
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                await reply("250 sink")
            elif verb == b"DATA":
                data = True
                await reply("354 go on")
            elif verb == b"QUIT":
                await reply("221 bye")
                break
            else:
                await reply("250 ok")
        writer.close()

    async def main():
        server = await asyncio.start_server(session, "127.0.0.1", int(port))
        async with server:
            await server.serve_forever()

    asyncio.run(main())


if __name__ == "__main__":
    cmds = {"login": cmd_login, "probe": cmd_probe, "storm": cmd_storm, "enum": cmd_enum, "recovery": cmd_recovery, "revoke": cmd_revoke, "smtp": cmd_smtp}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
