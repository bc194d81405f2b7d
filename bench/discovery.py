#!/usr/bin/env python3
"""What etcd discovery costs on the data path, and how fast it is.

(a) Keep-alive CPU per request (ringlb's user+system time from /proc/PID/stat over wrk's
    requests, as bench/e2e.py measures) while etcd changes the cluster every second, against the
    same ringlb with no change: runs of the two interleaved (alternating which goes first),
    repeated, medians. Each change rewrites the one backend's key with its weight flipped between
    1 and 2, so the cluster is republished (a new snapshot and Maglev table, picked up by every
    worker) while its traffic stays on the same nginx backend.
(b) Time from an etcd write to the first connection routed by it: a client loop connects through
    ringlb all the while; one key flips between two Python backends A and B; each sample is the
    time from just before the write (an HTTP put to etcd's gateway, no etcdctl start-up) to the
    first connection the newly named backend accepts.

Starts etcd (temporary data dir, loopback ports), nginx (bench/e2e.py's backend) and ringlb, and
stops all of them at the end, also on Ctrl-C; every wrk run is bounded.

  python3 bench/discovery.py --seconds 5 --repeat 5 --samples 50 --out bench/results/discovery
"""
import argparse
import base64
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402

ETCD_CLIENT, ETCD_PEER = 18290, 18291
RINGLB_PORT = 18292
PREFIX = "/ringlb/bench/"


def b64(text):
    return base64.b64encode(text.encode()).decode()


def etcd_put(key, value):
    body = json.dumps({"key": b64(key), "value": b64(value)}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{ETCD_CLIENT}/v3/kv/put", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        r.read()


def start_etcd(tmp):
    client, peer = f"http://127.0.0.1:{ETCD_CLIENT}", f"http://127.0.0.1:{ETCD_PEER}"
    e2e.spawn(["etcd", "--name", "bench", "--data-dir", os.path.join(tmp, "etcd"),
               "--listen-client-urls", client, "--advertise-client-urls", client,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", "bench=" + peer, "--log-level", "error"])
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{client}/health", timeout=1) as r:
                if b'"true"' in r.read():
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("etcd did not start")


def start_ringlb(tmp, workers, policy):
    conf = os.path.join(tmp, "ringlb.toml")
    with open(conf, "w") as f:
        f.write(f"""workers = {workers}
metrics-listen = "none"
max-connections = 9500
backlog = 4096
health-interval = "0s"

[etcd]
endpoints = ["http://127.0.0.1:{ETCD_CLIENT}"]

[cluster.web]
balance = "{policy}"
discovery = "etcd"
etcd-prefix = "{PREFIX}"

[[listener]]
address = "127.0.0.1:{RINGLB_PORT}"
cluster = "web"
""")
    p = e2e.spawn([e2e.RINGLB, "--config", conf])
    if not e2e.wait_port(RINGLB_PORT):
        sys.exit("ringlb did not start: " + p.stderr.read().decode(errors="replace"))
    return p


class Changer:
    """Rewrites the backend's key once a second (weight 1 <-> 2) while running."""

    def __init__(self, key, address):
        self.key, self.address, self.changes = key, address, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(1.0):
            self.changes += 1
            etcd_put(self.key, json.dumps({"address": self.address, "weight": 1 + self.changes % 2}))

    def finish(self):
        self.stop.set()
        self.thread.join()
        etcd_put(self.key, json.dumps({"address": self.address}))


def cpu_runs(ringlb, args):
    backend = f"127.0.0.1:{e2e.BACKEND_PORT}"
    etcd_put(PREFIX + "nginx", json.dumps({"address": backend}))
    time.sleep(0.5)
    runs = []
    for rep in range(args.repeat):
        order = ["changes", "none"] if rep % 2 == 0 else ["none", "changes"]
        for variant in order:
            changer = Changer(PREFIX + "nginx", backend) if variant == "changes" else None
            before = e2e.cpu_seconds([ringlb.pid])
            r = e2e.run_wrk(RINGLB_PORT, "keepalive", args.conns, args.seconds, 1, None)
            cpu = e2e.cpu_seconds([ringlb.pid]) - before
            if changer:
                changer.finish()
            r.update(variant=variant, changes=changer.changes if changer else 0,
                     cpu_us_per_req=cpu * 1e6 / r["requests"] if r["requests"] else None)
            runs.append(r)
            print(f"  {variant:8} rep {rep}: {r['rps']:.0f} req/s, "
                  f"{e2e.fmt(r['cpu_us_per_req'], 2)} µs/req, {r['changes']} changes", flush=True)
            time.sleep(0.5)
    return runs


class Listener:
    """A backend that records when it accepts, and closes at once."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.accepts = []  # monotonic times
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepts.append(time.monotonic())
            c.close()


def latency_samples(args):
    a, b = Listener(), Listener()
    stop = threading.Event()

    def clients():
        while not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", RINGLB_PORT), timeout=2)
                s.recv(16)
                s.close()
            except OSError:
                time.sleep(0.001)

    key = PREFIX + "flip"
    etcd_put(PREFIX + "nginx", json.dumps({"address": f"127.0.0.1:{e2e.BACKEND_PORT}", "drain": True}))
    etcd_put(key, json.dumps({"address": f"127.0.0.1:{a.port}"}))
    time.sleep(0.5)
    loop = threading.Thread(target=clients, daemon=True)
    loop.start()
    samples, target = [], b
    try:
        for _ in range(args.samples):
            time.sleep(0.3)
            t0 = time.monotonic()
            etcd_put(key, json.dumps({"address": f"127.0.0.1:{target.port}"}))
            deadline = t0 + 5
            while time.monotonic() < deadline:
                first = next((t for t in target.accepts if t >= t0), None)
                if first is not None:
                    samples.append((first - t0) * 1000)
                    break
                time.sleep(0.0005)
            target = a if target is b else b
    finally:
        stop.set()
        loop.join()
    return samples


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5, help="each wrk run")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each variant")
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--samples", type=int, default=50, help="write-to-first-connection samples")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--policy", default="maglev", help="the cluster's (maglev rebuilds a table per change)")
    ap.add_argument("--out", help="directory for results.json and results.md")
    args = ap.parse_args()

    signal.signal(signal.SIGINT, e2e.on_signal)
    signal.signal(signal.SIGTERM, e2e.on_signal)
    e2e.build_ringlb()
    e2e.raise_fd_limit()
    tmp = tempfile.mkdtemp(prefix="ringlb-discovery-")
    try:
        start_etcd(tmp)
        e2e.start_backend(tmp, 1)
        ringlb = start_ringlb(tmp, args.workers, args.policy)
        print(f"(a) keep-alive, {args.conns} conns, {args.seconds} s runs, {args.repeat} of each", flush=True)
        runs = cpu_runs(ringlb, args)
        print(f"(b) etcd write -> first connection routed by it, {args.samples} samples", flush=True)
        samples = latency_samples(args)
    finally:
        e2e.stop_all()

    table = []
    for variant in ("none", "changes"):
        rs = [r for r in runs if r["variant"] == variant]
        table.append({"variant": variant, "n": len(rs), "cpu_us_per_req": e2e.median([r["cpu_us_per_req"] for r in rs]),
                      "rps": e2e.median([r["rps"] for r in rs]), "p99_ms": e2e.median([r["p99_ms"] for r in rs]),
                      "changes": sum(r["changes"] for r in rs),
                      "errors": sum(r["socket_errors"] + r["non2xx"] for r in rs)})
    lat = sorted(samples)
    latency = {"n": len(lat), "missed": args.samples - len(lat)}
    if lat:
        latency.update(median_ms=statistics.median(lat), p90_ms=lat[int(0.9 * (len(lat) - 1))],
                       min_ms=lat[0], max_ms=lat[-1])
    lines = ["| etcd changes | runs | ringlb CPU µs/req (median) | req/s | p99 ms | changes | errors |",
             "|---|---|---|---|---|---|---|"]
    for row in table:
        lines.append(f"| {'1 a second' if row['variant'] == 'changes' else 'none'} | {row['n']} | "
                     f"{e2e.fmt(row['cpu_us_per_req'], 2)} | {e2e.fmt(row['rps'], 0)} | {e2e.fmt(row['p99_ms'], 3)} | "
                     f"{row['changes']} | {row['errors']} |")
    if lat:
        lines += ["", f"etcd write to the first connection routed by it: median {latency['median_ms']:.1f} ms, "
                      f"p90 {latency['p90_ms']:.1f} ms, min {latency['min_ms']:.1f}, max {latency['max_ms']:.1f} "
                      f"({latency['n']} samples, {latency['missed']} missed)"]
    print("\n".join(lines))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        meta = {"seconds": args.seconds, "repeat": args.repeat, "conns": args.conns, "workers": args.workers,
                "policy": args.policy, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"meta": meta, "runs": runs, "table": table, "latency_ms": samples, "latency": latency}, f, indent=1)
        with open(os.path.join(args.out, "results.md"), "w") as f:
            f.write(f"`python3 bench/discovery.py` {meta}\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
