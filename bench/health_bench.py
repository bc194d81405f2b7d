#!/usr/bin/env python3
"""The health checker's CPU for N backends checked every second, by check type (tcp, http, tls).

One nginx (1 worker) listens on 0.0.0.0 at a plain port (HTTP 200 on /healthz) and a TLS port
(self-signed ECDSA P-256 certificate made at start, same location); the N backends are N
loopback addresses (127.0.1.1, 127.0.1.2, ...) on that port, so ringlb sees N distinct backends
and checks each on its own. ringlb runs one cluster of them with `health-interval = "1s"`; after
a warm-up, the ringlb-health thread's CPU (user + system from /proc/PID/task/TID/stat) is
sampled over --seconds and divided by the checks counted in ringlb_health_checks_total. The
proxy serves no clients meanwhile: this is the checker's cost alone.

  python3 bench/health_bench.py                       # 1,000 backends, tcp, http, tls, 20 s each
  python3 bench/health_bench.py --backends 20 --seconds 3 --types tcp,http,tls   # a smoke run
  python3 bench/health_bench.py --types tls --repeat 3 --binary old=/tmp/ringlb-old --binary new=bazel-bin/server/ringlb

Prints a Markdown table: checks per second seen, the thread's CPU (% of one core), and CPU time
per check.
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402

PLAIN_PORT = 18380
TLS_PORT = 18381
METRICS_PORT = 18382
LISTEN_PORT = 18383


def start_nginx(tmp):
    key, crt = os.path.join(tmp, "key.pem"), os.path.join(tmp, "crt.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-subj", "/CN=backend", "-keyout", key, "-out", crt, "-days", "2"],
                   check=True, capture_output=True)
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(e2e.nginx_main(tmp, "health-backend", 1) + f"""http {{
  access_log off;
  server {{ listen 0.0.0.0:{PLAIN_PORT} backlog=4096; listen 0.0.0.0:{TLS_PORT} ssl backlog=4096;
           ssl_certificate {crt}; ssl_certificate_key {key};
           location /healthz {{ return 200 "ok\\n"; }} }}
}}
""")
    e2e.spawn(["nginx", "-c", conf, "-p", tmp])
    for port in (PLAIN_PORT, TLS_PORT):
        if not e2e.wait_port(port):
            sys.exit(f"nginx did not start on {port}; see {tmp}/health-backend-error.log")


def addresses(n, port):
    # 127.0.1.1 ... : all of 127/8 reaches a socket bound to 0.0.0.0.
    return [f"127.{1 + i // 250}.{1 + i % 250}.1:{port}" for i in range(n)]


def scrape(name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def health_thread_cpu(pid):
    """Seconds of CPU (user + system) of the ringlb-health thread."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != "ringlb-health":
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / e2e.CLK_TCK
        except OSError:
            continue
    sys.exit("no ringlb-health thread")


def run(check, n, seconds, warmup, tmp, binary):
    port = TLS_PORT if check == "tls" else PLAIN_PORT
    keys = {"tcp": "", "http": 'check = "http"\ncheck-path = "/healthz"\n', "tls": 'check = "tls"\n'}[check]
    conf = os.path.join(tmp, f"ringlb-{check}.toml")
    with open(conf, "w") as f:
        f.write(f"""workers = 1
metrics-listen = "127.0.0.1:{METRICS_PORT}"
buffers = 16
buffer-size = 65536
[cluster.bench]
health-interval = "1s"
health-timeout = "900ms"
{keys}backends = [{", ".join('"' + a + '"' for a in addresses(n, port))}]
[[listener]]
address = "127.0.0.1:{LISTEN_PORT}"
cluster = "bench"
""")
    p = e2e.spawn([binary, "--config", conf])
    if not e2e.wait_port(METRICS_PORT):
        sys.exit("ringlb did not start: " + p.stderr.read().decode(errors="replace")[-2000:])
    time.sleep(warmup)
    cpu0, checks0, failed0, t0 = health_thread_cpu(p.pid), scrape("ringlb_health_checks_total"), \
        scrape("ringlb_health_check_failures_total"), time.time()
    time.sleep(seconds)
    cpu1, checks1, failed1, t1 = health_thread_cpu(p.pid), scrape("ringlb_health_checks_total"), \
        scrape("ringlb_health_check_failures_total"), time.time()
    p.send_signal(signal.SIGTERM)
    p.wait(15)
    e2e.children.remove(p)
    checks = checks1 - checks0
    return {"check": check, "backends": n, "checks_per_s": checks / (t1 - t0), "failed": failed1 - failed0,
            "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "us_per_check": 1e6 * (cpu1 - cpu0) / max(checks, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--types", default="tcp,http,tls")
    ap.add_argument("--no-build", action="store_true", help="use bazel-bin/server/ringlb as it is")
    ap.add_argument("--binary", action="append", default=[], metavar="NAME=PATH",
                    help="compare builds: each type runs on each, interleaved (default: this checkout's)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each (type, build); the table has medians")
    args = ap.parse_args()
    builds = [tuple(b.split("=", 1)) for b in args.binary] or [("ringlb", e2e.RINGLB)]
    for name, path in builds:
        if not os.access(path, os.X_OK):
            sys.exit(f"--binary {name}={path}: not an executable")
    if not 1 <= args.backends <= 1000:
        sys.exit("--backends: 1 to 1000 (ringlb's live backend limit is 1,024)")
    signal.signal(signal.SIGINT, e2e.on_signal)
    signal.signal(signal.SIGTERM, e2e.on_signal)
    if not args.no_build and not args.binary:
        e2e.build_ringlb()
    e2e.raise_fd_limit()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            start_nginx(tmp)
            runs = {}
            for _ in range(args.repeat):
                for check in args.types.split(","):
                    for name, path in builds:  # interleaved: each round runs every build once
                        r = run(check, args.backends, args.seconds, args.warmup, tmp, path)
                        runs.setdefault((check, name), []).append(r)
                        print(f"# {check} {name}: {r['us_per_check']:.1f} µs per check", file=sys.stderr)
            for (check, name), rs in runs.items():
                med = lambda k: statistics.median(r[k] for r in rs)
                rows.append({"check": check, "build": name, "backends": args.backends,
                             "checks_per_s": med("checks_per_s"), "failed": sum(r["failed"] for r in rs),
                             "cpu_pct": med("cpu_pct"), "us_per_check": med("us_per_check")})
        finally:
            e2e.stop_all()
    print(f"| check | build | backends | checks/s | failed | ringlb-health CPU (% of a core) | CPU µs per check |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['check']} | {r['build']} | {r['backends']} | {r['checks_per_s']:.0f} | {r['failed']:.0f} | "
              f"{r['cpu_pct']:.1f} | {r['us_per_check']:.1f} |")


if __name__ == "__main__":
    main()
