#!/usr/bin/env python3
"""Load helpers for scripts/bench-serve.sh (the parts wrk cannot do).

Loopback only: every address must be 127.0.0.1 or localhost. Every loop is
bounded by a count and a deadline. Standard library only.

    bench-serve.py create ADDR [JSON]              prints a new session's id
    bench-serve.py drain ADDR ID                   waits until nothing is queued or running
    bench-serve.py e2e ADDR ID N BATCH             N trivial runs, submit to all finished
    bench-serve.py chain ADDR ID CLIENTS SECONDS   ?wait=true runs of the `chain` pipeline
    bench-serve.py subscribers ADDR ID PID N RUNS  N open event streams while RUNS runs flow
    bench-serve.py soak ADDR ID PID WARMUP N SECS  RSS before/after N runs through one session
                                                   (fewer if they do not finish within about SECS:
                                                   at most 4,000 runs wait in the queue at once)

Each prints one line `RESULT key=value ...` for the shell script.
"""

import http.client
import json
import selectors
import socket
import sys
import threading
import time

DEADLINE_S = 240.0  # no single step runs longer than this


def split_addr(addr):
    host, port = addr.rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost"):
        sys.exit(f"bench-serve.py: {addr} is not a loopback address")
    return host, int(port)


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, addr):
        self.host, self.port = split_addr(addr)
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw else None), resp
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt == 2:
                    raise
        raise RuntimeError("unreachable")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def counts(client, sid):
    status, body, _ = client.request("GET", f"/v1/sessions/{sid}")
    if status != 200:
        raise RuntimeError(f"GET session {sid}: {status} {body}")
    return body["runs"]


def finished(c):
    return sum(v for k, v in c.items() if k not in ("queued", "running"))


def drain(client, sid, deadline_s=DEADLINE_S):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        c = counts(client, sid)
        if c.get("queued", 0) == 0 and c.get("running", 0) == 0:
            return c
        time.sleep(0.05)
    raise RuntimeError(f"session {sid} did not drain within {deadline_s} s: {c}")


def submit(client, sid, n, batch, spec=None, budget_s=None):
    """Submits n runs in batches, backing off on 429 (queue full). With a
    budget, stops submitting when it is spent; returns how many were
    submitted."""
    spec = spec or {}
    left = n
    end = time.monotonic() + (budget_s or DEADLINE_S)
    while left > 0:
        if time.monotonic() > end:
            if budget_s is not None:
                return n - left
            raise RuntimeError("submitting took too long")
        k = min(batch, left)
        status, body, _ = client.request("POST", f"/v1/sessions/{sid}/runs", {"runs": [spec] * k})
        if status == 202:
            left -= k
        elif status == 429:
            time.sleep(0.02)
        else:
            raise RuntimeError(f"submit: {status} {body}")
    return n


def wait_finished(client, sid, target, deadline_s=DEADLINE_S):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        c = counts(client, sid)
        if finished(c) >= target:
            return c
        time.sleep(0.01)
    raise RuntimeError(f"only {finished(c)} of {target} runs finished: {c}")


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def cmd_create(addr, body="{}"):
    status, view, _ = Client(addr).request("POST", "/v1/sessions", json.loads(body))
    if status != 201:
        sys.exit(f"create: {status} {view}")
    print(view["id"])


def cmd_drain(addr, sid):
    c = drain(Client(addr), sid)
    failed = {k: v for k, v in c.items() if k not in ("succeeded", "queued", "running") and v}
    print(f"RESULT finished={finished(c)} not_succeeded={sum(failed.values())}")


def cmd_e2e(addr, sid, n, batch):
    client = Client(addr)
    base = finished(drain(client, sid))
    t0 = time.monotonic()
    submit(client, sid, n, batch)
    c = wait_finished(client, sid, base + n)
    dt = time.monotonic() - t0
    ok = c.get("succeeded", 0)
    print(f"RESULT runs={n} seconds={dt:.3f} runs_per_s={n / dt:.0f} succeeded_total={ok}")


def cmd_chain(addr, sid, clients, seconds):
    lat = [[] for _ in range(clients)]
    errors = []
    stop_at = time.monotonic() + seconds
    body = {"runs": [{"pipeline_names": ["chain"]}]}

    def work(i):
        client = Client(addr)
        # One warm-up request per client, not counted.
        client.request("POST", f"/v1/sessions/{sid}/runs?wait=true", body)
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            status, resp, _ = client.request("POST", f"/v1/sessions/{sid}/runs?wait=true", body)
            dt = time.perf_counter() - t0
            if status != 200 or resp["runs"][0]["status"] != "succeeded":
                errors.append((status, resp))
                return
            lat[i].append(dt)

    t0 = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    if errors:
        sys.exit(f"chain: {errors[0]}")
    all_lat = [x for l in lat for x in l]
    print(
        f"RESULT runs={len(all_lat)} runs_per_s={len(all_lat) / dt:.0f} "
        f"p50_ms={pct(all_lat, 50) * 1e3:.2f} p99_ms={pct(all_lat, 99) * 1e3:.2f}"
    )


def cmd_subscribers(addr, sid, pid, n, runs):
    host, port = split_addr(addr)
    client = Client(addr)
    drain(client, sid)
    before = rss_kb(pid)
    sel = selectors.DefaultSelector()
    socks = []
    received = {}
    request = (
        f"GET /v1/sessions/{sid}/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()
    for _ in range(n):
        s = socket.create_connection((host, port), timeout=30)
        s.sendall(request)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
        received[s.fileno()] = 0
    stop = threading.Event()
    peak = [before]

    def pump():
        end = time.monotonic() + DEADLINE_S
        while not stop.is_set() and time.monotonic() < end:
            for key, _ in sel.select(timeout=0.05):
                try:
                    chunk = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                if chunk:
                    received[key.fileobj.fileno()] += len(chunk)
                else:
                    sel.unregister(key.fileobj)

    reader = threading.Thread(target=pump)
    reader.start()
    try:
        # Every stream answered (the greeting at least) before runs flow.
        end = time.monotonic() + 60
        while time.monotonic() < end and sum(1 for v in received.values() if v > 0) < n:
            time.sleep(0.05)
        opened = rss_kb(pid)
        base = finished(counts(client, sid))
        before_bytes = sum(received.values())
        submit(client, sid, runs, 500)
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            peak[0] = max(peak[0], rss_kb(pid))
            if finished(counts(client, sid)) >= base + runs:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # let the last events reach every subscriber
        peak[0] = max(peak[0], rss_kb(pid))
        live = sum(1 for v in received.values() if v > 0)
        flowed = sum(received.values()) - before_bytes
    finally:
        stop.set()
        reader.join()
        for s in socks:
            s.close()
    print(
        f"RESULT subscribers={n} answered={live} runs={runs} event_mb={flowed / 1e6:.1f} "
        f"rss_before_mb={before / 1024:.1f} rss_open_mb={opened / 1024:.1f} "
        f"rss_peak_mb={peak[0] / 1024:.1f} growth_mb={(peak[0] - before) / 1024:.1f}"
    )


def submit_paced(client, sid, n, batch, budget_s, backlog):
    """Submits up to n runs in batches, keeping at most `backlog` runs
    unfinished, until n are submitted or `budget_s` is spent (so a slow
    store still finishes in bounded time); returns how many were
    submitted."""
    base = finished(counts(client, sid))
    sent = 0
    end = time.monotonic() + budget_s
    while sent < n and time.monotonic() < end:
        if sent - (finished(counts(client, sid)) - base) + batch > backlog:
            time.sleep(0.01)
            continue
        k = min(batch, n - sent)
        status, body, _ = client.request("POST", f"/v1/sessions/{sid}/runs", {"runs": [{}] * k})
        if status == 202:
            sent += k
        elif status == 429:
            time.sleep(0.02)
        else:
            raise RuntimeError(f"submit: {status} {body}")
    return sent


def cmd_soak(addr, sid, pid, warmup, n, budget_s):
    client = Client(addr)
    base = finished(drain(client, sid))
    # The warm-up gets a quarter of the budget, the measured runs the rest;
    # at most 4 batches wait in the queue at any time.
    warmup = submit_paced(client, sid, warmup, 1000, budget_s / 4, 4000)
    base = finished(wait_finished(client, sid, base + warmup))
    time.sleep(0.5)
    before = rss_kb(pid)
    t0 = time.monotonic()
    n = submit_paced(client, sid, n, 1000, budget_s, 4000)
    c = wait_finished(client, sid, base + n)
    dt = time.monotonic() - t0
    time.sleep(0.5)
    after = rss_kb(pid)
    print(
        f"RESULT runs={n} seconds={dt:.1f} runs_per_s={n / dt:.0f} succeeded_total={c.get('succeeded', 0)} "
        f"rss_before_mb={before / 1024:.1f} rss_after_mb={after / 1024:.1f} "
        f"growth_mb={(after - before) / 1024:.1f}"
    )


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "create":
        cmd_create(*args)
    elif cmd == "drain":
        cmd_drain(*args)
    elif cmd == "e2e":
        cmd_e2e(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "chain":
        cmd_chain(args[0], args[1], int(args[2]), float(args[3]))
    elif cmd == "subscribers":
        cmd_subscribers(args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
    elif cmd == "soak":
        cmd_soak(args[0], args[1], int(args[2]), int(args[3]), int(args[4]), float(args[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
