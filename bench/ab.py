#!/usr/bin/env python3
"""Side-by-side A/B of ringlb settings (and HAProxy) under wrk, one mode at a time.

Each variant is a ringlb started with extra arguments ("name=ARGS", ARGS split on spaces; a word
BIN:PATH runs the ringlb binary at PATH instead of this tree's, e.g. one built from an older
commit, to compare two versions side by side);
"haproxy" adds HAProxy 2.6 mode tcp, "haproxy-pinned" the same with its thread on CPU 0
(cpu-map, as ringlb's --cpu-affinity auto places a single worker). Every variant runs against the same nginx backend, in
alternating order, repeated; the table shows medians of the proxy's CPU time per request (the
steady measure on this machine), requests/s and p99.

  python3 bench/ab.py --mode close --conns 10,100 --repeat 5 \\
      "default=" "pinned=--cpu-affinity auto" haproxy haproxy-pinned
"""
import argparse
import os
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
    ap.add_argument("--send-proxy", choices=("v1", "v2"),
                    help="every proxy sends a PROXY header of this version to the backend")
    args = ap.parse_args()
    concs = [int(c) for c in args.conns.split(",")]

    e2e.build_ringlb()
    e2e.raise_fd_limit()
    tmp = tempfile.mkdtemp(prefix="ringlb-ab-")
    e2e.start_backend(tmp, 1)
    procs = {}
    for port, spec in enumerate(args.variants, start=18310):
        conf_dir = tempfile.mkdtemp(dir=tmp)  # one config file each
        if spec in ("haproxy", "haproxy-pinned"):
            procs[spec] = (e2e.start_proxy("haproxy", conf_dir, 1, pin=spec == "haproxy-pinned", port=port,
                                           send_proxy=args.send_proxy), port)
            continue
        name, _, extra = spec.partition("=")
        words = extra.split()
        binary = [w[len("BIN:"):] for w in words if w.startswith("BIN:")]
        words = [w for w in words if not w.startswith("BIN:")]
        saved, e2e.RINGLB = e2e.RINGLB, (binary[0] if binary else e2e.RINGLB)
        try:
            procs[name] = (e2e.start_proxy("ringlb", conf_dir, 1, port=port, extra=words,
                                           send_proxy=args.send_proxy), port)
        finally:
            e2e.RINGLB = saved
    runs = []
    try:
        for rep in range(args.repeat):
            for conc in concs:
                order = list(procs) if rep % 2 == 0 else list(procs)[::-1]
                for name in order:
                    proc, port = procs[name]
                    pids = e2e.process_tree(proc.pid)  # HAProxy -W: the worker is a child
                    before = e2e.cpu_seconds(pids)
                    r = e2e.run_wrk(port, args.mode, conc, args.seconds, 1, None)
                    cpu = e2e.cpu_seconds(pids) - before
                    r.update(proxy=name, mode=args.mode, conc=conc,
                             cpu_us_per_req=cpu * 1e6 / r["requests"] if r["requests"] else None)
                    runs.append(r)
                    time.sleep(0.5)
    finally:
        e2e.stop_all()
    rows = sorted(e2e.summarize(runs), key=lambda row: (row["conc"], list(procs).index(row["proxy"])))
    print("| mode | conns | variant | proxy CPU µs/req | req/s | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['conc']} | {row['proxy']} | {e2e.fmt(row['cpu_us_per_req'], 2)} | "
              f"{e2e.fmt(row['rps'], 0)} | {e2e.fmt(row['p99_ms'], 3)} | {row['errors']} |")


if __name__ == "__main__":
    main()
