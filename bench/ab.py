#!/usr/bin/env python3
"""Side-by-side A/B of ringlb settings (and HAProxy) under wrk, one mode at a time.

Each variant is a ringlb started with extra arguments ("name=ARGS", ARGS split on spaces);
"haproxy" adds HAProxy 2.6 mode tcp, "haproxy-pinned" the same with its thread on CPU 0
(cpu-map, as ringlb's --cpu-affinity auto places a single worker). Every variant runs against the same nginx backend, in
alternating order, repeated; the table shows medians of the proxy's CPU time per request (the
steady measure on this machine), requests/s and p99.

  python3 bench/ab.py --mode close --conns 10,100 --repeat 5 \\
      "default=" "pinned=--cpu-affinity auto" haproxy haproxy-pinned
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", help='"name=ringlb args", haproxy or haproxy-pinned')
    ap.add_argument("--mode", choices=("close", "keepalive"), default="close")
    ap.add_argument("--conns", default="10,100")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    concs = [int(c) for c in args.conns.split(",")]

    e2e.build_ringlb()
    tmp = tempfile.mkdtemp(prefix="ringlb-ab-")
    e2e.start_backend(tmp, 1)
    procs = {}
    port = 18310
    for spec in args.variants:
        if spec in ("haproxy", "haproxy-pinned"):
            e2e.PROXY_PORT["haproxy"] = port  # one port each
            conf_dir = tempfile.mkdtemp(dir=tmp)
            procs[spec] = (e2e.start_proxy("haproxy", conf_dir, 1, pin=spec == "haproxy-pinned"), port)
            port += 1
            continue
        name, _, extra = spec.partition("=")
        argv = [e2e.RINGLB, "--listen", f"127.0.0.1:{port}", "--backend", f"127.0.0.1:{e2e.BACKEND_PORT}",
                "--workers", "1", "--metrics-listen", "none", "--backlog", "4096"] + extra.split()
        procs[name] = (e2e.spawn(argv), port)
        port += 1
    for name, (proc, p) in procs.items():
        if not e2e.wait_port(p):
            sys.exit(f"{name} did not start")
    rows = {name: [] for name in procs}
    try:
        for rep in range(args.repeat):
            for conc in concs:
                order = list(procs) if rep % 2 == 0 else list(procs)[::-1]
                for name in order:
                    proc, p = procs[name]
                    pids = e2e.process_tree(proc.pid)  # HAProxy -W: the worker is a child
                    before = e2e.cpu_seconds(pids)
                    r = e2e.run_wrk(p, args.mode, conc, args.seconds, 1, None)
                    cpu = e2e.cpu_seconds(pids) - before
                    rows[name].append((conc, cpu * 1e6 / max(r["requests"], 1), r["rps"], r["p99_ms"],
                                       r.get("socket_errors", 0)))
                    time.sleep(0.5)
    finally:
        e2e.stop_all()
    print(f"| mode | conns | variant | proxy CPU µs/req | req/s | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for conc in concs:
        for name, rs in rows.items():
            xs = [r for r in rs if r[0] == conc]
            print(f"| {args.mode} | {conc} | {name} | {statistics.median(x[1] for x in xs):.2f} | "
                  f"{statistics.median(x[2] for x in xs):,.0f} | {statistics.median(x[3] for x in xs):.3f} | "
                  f"{sum(x[4] or 0 for x in xs)} |")


if __name__ == "__main__":
    main()
