#!/usr/bin/env python3
"""CPU cost per request of ringlb with metrics on and with --metrics-listen none.

Two ringlb processes (1 worker each) run side by side in front of the same nginx backend, one
with metrics and one without (no latency recording, no sampled completions). wrk loads them in
turn, alternating, for --repeat rounds in each mode; for every run the proxy's own CPU time
(user + system, from /proc/PID/stat) is divided by the requests served. Medians are reported.

This machine exposes no hardware counters to perf (perf stat says <not supported>) and
valgrind 3.19 cannot run ringlb's io_uring set-up, so CPU time per request is the measure here;
where `perf stat -e instructions` works, pass --perf to add instructions and cycles per request.
"""
import argparse
import os
import signal
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (process start-up, wrk parsing and CPU accounting are shared)

PORTS = {"on": 18291, "off": 18292}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--perf", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGINT, e2e.on_signal)
    e2e.build_ringlb()
    tmp = tempfile.mkdtemp(prefix="ringlb-mo-")
    results = {(m, k): [] for m in ("keepalive", "close") for k in PORTS}
    try:
        e2e.start_backend(tmp, 1)
        procs = {}
        for mode, port in PORTS.items():
            procs[mode] = e2e.spawn([e2e.RINGLB, "--listen", f"127.0.0.1:{port}", "--backend",
                                     f"127.0.0.1:{e2e.BACKEND_PORT}", "--workers", "1",
                                     "--max-connections", "4096",
                                     "--metrics-listen", "127.0.0.1:0" if mode == "on" else "none"])
            if not e2e.wait_port(port):
                sys.exit(f"ringlb ({mode}) did not start")
        for rep in range(args.repeat):
            for load in ("keepalive", "close"):
                order = ("on", "off") if rep % 2 == 0 else ("off", "on")
                for k in order:
                    pid = procs[k].pid
                    cpu0 = e2e.cpu_seconds([pid])
                    res = e2e.run_wrk(PORTS[k], load, args.conns, args.seconds, 1, pid if args.perf else None)
                    cpu = e2e.cpu_seconds([pid]) - cpu0
                    per = cpu * 1e6 / max(1, res["requests"])
                    results[(load, k)].append(per)
                    print(f"[{rep + 1}/{args.repeat}] {load:9} metrics {k:3}: {res['rps']:>9,.0f} req/s "
                          f"{per:6.2f} µs CPU/request", flush=True)
                    time.sleep(1)
    finally:
        e2e.stop_all()
    print("\n| mode | metrics on: µs CPU/req | --metrics-listen none | difference |\n|---|---|---|---|")
    for load in ("keepalive", "close"):
        on = statistics.median(results[(load, "on")])
        off = statistics.median(results[(load, "off")])
        print(f"| {load} | {on:.2f} | {off:.2f} | {100 * (on - off) / off:+.1f}% |")


if __name__ == "__main__":
    main()
