#!/usr/bin/env python3
"""Bulk TCP throughput and CPU per byte through each proxy, measured with iperf3.

One iperf3 server on 127.0.0.1 is the backend of every contender; the iperf3 client connects to
each contender's port in turn. iperf3 opens a control connection and then its data connections
to the same port, so every proxy has that one server as its only backend and forwards them all.
Contenders (positional, any order; default: "ringlb=" haproxy haproxy-splice haproxy-splice-rr nginx
direct):

  NAME=ARGS           ringlb (--workers 1, its defaults) with extra ARGS (split on spaces); a word
                      BIN:PATH runs the ringlb binary at PATH instead (as bench/ab.py does)
  haproxy             HAProxy 2.6, mode tcp, nbthread 1, its defaults (no splicing)
  haproxy-splice      the same with `option splice-auto` (HAProxy 2.6 decides when; on this machine
                      it never spliced: strace -c showed recvfrom/sendto only)
  haproxy-splice-rr   the same with `option splice-request` and `option splice-response` (splices
                      always: recv and send become splice() through a pipe)
  nginx               nginx stream, 1 worker
  direct              no proxy: the client talks to the iperf3 server itself

Cases: --streams (iperf3 -P, default 1,8) times --directions (c2s: the client sends, s2c:
iperf3 -R, the server sends). Every case runs each contender for --seconds, in an order rotated
each round, --repeat rounds; the tables show medians. Per run: Gbit/s (iperf3 --json,
end.sum_received), the proxy's CPU seconds (user + system of all its threads and child processes,
from /proc/PID/stat) per GiB received, iperf3's TCP retransmits (end.sum_sent) and the proxy's
peak RSS during the run (VmHWM, reset through /proc/PID/clear_refs before each run). For ringlb
its /metrics also give bytes per recv completion and buffer waits.

  python3 bench/bulk.py --ringlb /tmp/ringlb-bench --seconds 10 --repeat 3
  python3 bench/bulk.py "ringlb=" "ringlb-old=BIN:/tmp/ringlb-old" haproxy --streams 8
  python3 bench/bulk.py --short --ringlb /tmp/ringlb-bench     # CI smoke: 1 s, 1 round, -P 1

ringlb runs with `--health-interval 0s` unless its ARGS set one: a check's connect-and-close
arriving while iperf3 sets up its data streams is taken for a stream and fails the test.
Writes results.md, results.json, gbps.png and cpu.png into --out (bench/results/bulk; with
--short a temporary directory). Exits non-zero when any iperf3 run failed or moved no bytes.
"""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402  (process start-up, CPU accounting, medians and charts are shared)

IPERF_PORT = 18680
FIRST_PROXY_PORT = 18601
FIRST_METRICS_PORT = 18651
HAPROXY_VARIANTS = {"haproxy": [], "haproxy-splice": ["option splice-auto"],
                    "haproxy-splice-rr": ["option splice-request", "option splice-response"]}
GIB = 1 << 30


class Contender:
    def __init__(self, name, kind, port, proc=None, metrics_port=None):
        self.name, self.kind, self.port, self.proc, self.metrics_port = name, kind, port, proc, metrics_port

    def pids(self):
        return e2e.process_tree(self.proc.pid) if self.proc else []


def start_contenders(specs, tmp):
    out = []
    for i, spec in enumerate(specs):
        port, metrics_port = FIRST_PROXY_PORT + i, None
        conf_dir = tempfile.mkdtemp(dir=tmp)  # one config and pid file each
        if spec == "direct":
            out.append(Contender("direct", "direct", IPERF_PORT))
            continue
        if spec in HAPROXY_VARIANTS:
            proc = e2e.start_proxy("haproxy", conf_dir, 1, port=port, extra=HAPROXY_VARIANTS[spec],
                                   backend_port=IPERF_PORT)
            out.append(Contender(spec, "haproxy", port, proc))
            continue
        if spec == "nginx":
            proc = e2e.start_proxy("nginx", conf_dir, 1, port=port, backend_port=IPERF_PORT)
            out.append(Contender(spec, "nginx", port, proc))
            continue
        name, eq, extra = spec.partition("=")
        if not eq and name != "ringlb":
            sys.exit(f"unknown contender {spec!r}: use NAME=RINGLB-ARGS, haproxy, haproxy-splice, "
                     "haproxy-splice-rr, nginx or direct")
        words = extra.split()
        binary = [w[len("BIN:"):] for w in words if w.startswith("BIN:")]
        words = [w for w in words if not w.startswith("BIN:")]
        if "--health-interval" not in words:
            words += ["--health-interval", "0s"]
        if "--metrics-listen" in words:
            value = words[words.index("--metrics-listen") + 1]
            metrics_port = None if value == "none" else int(value.rsplit(":", 1)[1])
        else:
            metrics_port = FIRST_METRICS_PORT + i
            words += ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
        saved, e2e.RINGLB = e2e.RINGLB, (binary[0] if binary else e2e.RINGLB)
        try:
            proc = e2e.start_proxy("ringlb", conf_dir, 1, port=port, extra=words, backend_port=IPERF_PORT)
        finally:
            e2e.RINGLB = saved
        out.append(Contender(name, "ringlb", port, proc, metrics_port))
    return out


def start_iperf_server(tmp):
    log = open(os.path.join(tmp, "iperf3-server.log"), "w")  # not a pipe: nobody reads it
    proc = subprocess.Popen(["iperf3", "-s", "-p", str(IPERF_PORT), "-B", "127.0.0.1"],
                            stdout=log, stderr=subprocess.STDOUT)
    e2e.children.append(proc)
    # No probe connection: iperf3 takes any connection for a control connection and logs an error.
    deadline = time.time() + 10
    while time.time() < deadline:
        r = subprocess.run(["ss", "-Hltn", f"sport = :{IPERF_PORT}"], capture_output=True, text=True)
        if r.stdout.strip():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit("iperf3 server did not start: " + open(log.name).read())


def reset_peak_rss(pids):
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass


def peak_rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(l.split()[1]) for l in f if l.startswith("VmHWM:")), 0)
        except OSError:
            pass
    return total


def ringlb_metrics(port):
    """The few counters of ringlb's /metrics worth a look in bulk transfers (sums over labels)."""
    want = {'ringlb_cqe_latency_seconds_count{op="recv"}': "recvs",
            'ringlb_cqe_latency_seconds_count{op="send"}': "sends",
            "ringlb_buffer_waits_total": "buffer_waits",
            "ringlb_backend_sent_bytes_total": "backend_sent", "ringlb_backend_received_bytes_total": "backend_received"}
    out = dict.fromkeys(want.values(), 0.0)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        base = key.split("{", 1)[0]
        name = want.get(key) or want.get(base)
        if name:
            out[name] += float(value)
    return out


def run_iperf(port, streams, reverse, seconds):
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-P", str(streams),
            "--json", "--connect-timeout", "3000"] + (["-R"] if reverse else [])
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        return {"error": "iperf3 timed out", "bytes": 0}
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        return {"error": f"iperf3 rc {r.returncode}: {(r.stderr or r.stdout).strip()[:200]}", "bytes": 0}
    if doc.get("error") or r.returncode:
        return {"error": doc.get("error") or f"iperf3 rc {r.returncode}", "bytes": 0}
    end = doc.get("end", {})
    recv, sent = end.get("sum_received", {}), end.get("sum_sent", {})
    return {"bytes": int(recv.get("bytes", 0)), "gbps": recv.get("bits_per_second", 0) / 1e9,
            "retransmits": sent.get("retransmits"), "iperf_cpu": end.get("cpu_utilization_percent")}


def run_one(c, streams, direction, seconds):
    pids = c.pids()
    reset_peak_rss(pids)
    m0 = ringlb_metrics(c.metrics_port) if c.metrics_port else None
    cpu0 = e2e.cpu_seconds(pids)
    res = run_iperf(c.port, streams, direction == "s2c", seconds)
    cpu = e2e.cpu_seconds(pids) - cpu0
    res.update(proxy=c.name, streams=streams, direction=direction)
    if c.proc:
        res["cpu_s"] = cpu
        res["cpu_s_per_gib"] = cpu * GIB / res["bytes"] if res["bytes"] else None
        res["peak_rss_kib"] = peak_rss_kib(pids)
    if m0:
        m1 = ringlb_metrics(c.metrics_port)
        if m1:
            d = {k: m1[k] - m0[k] for k in m0}
            moved = d["backend_sent"] + d["backend_received"]
            res["bytes_per_recv"] = moved / d["recvs"] if d["recvs"] else None
            res["buffer_waits"] = d["buffer_waits"]
    return res


def case_name(streams, direction):
    return f"P{streams} {direction}"


def summarize(runs, names):
    rows = []
    cases = sorted({(r["streams"], r["direction"]) for r in runs})
    for streams, direction in cases:
        for name in names:
            rs = [r for r in runs if r["proxy"] == name and r["streams"] == streams and r["direction"] == direction]
            if not rs:
                continue
            ok = [r for r in rs if not r.get("error") and r["bytes"]]
            rows.append({"case": case_name(streams, direction), "streams": streams, "direction": direction,
                         "proxy": name, "runs": len(rs), "ok": len(ok),
                         "gbps": e2e.median([r["gbps"] for r in ok]),
                         "cpu_s_per_gib": e2e.median([r.get("cpu_s_per_gib") for r in ok]),
                         "retransmits": e2e.median([r.get("retransmits") for r in ok]),
                         "peak_rss_mib": e2e.median([r["peak_rss_kib"] / 1024 for r in ok if "peak_rss_kib" in r]),
                         "bytes_per_recv": e2e.median([r.get("bytes_per_recv") for r in ok]),
                         "buffer_waits": e2e.median([r.get("buffer_waits") for r in ok]),
                         "errors": sorted({r["error"] for r in rs if r.get("error")})})
    return rows


def ratio(a, b):
    return None if a is None or not b else a / b


def write_markdown(path, rows, contenders, meta):
    kinds = {c.name: c.kind for c in contenders}
    with open(path, "w") as f:
        f.write("# Bulk throughput through a proxy (iperf3)\n\n")
        f.write(f"Command: `{meta['command']}`\n\n")
        f.write(f"Machine: {meta['cpus']} CPUs ({meta['cpu_model']}), kernel {meta['kernel']}, "
                f"{meta['iperf']}. Each cell is the median of {meta['repeat']} interleaved "
                f"{meta['seconds']} s runs. Proxy CPU is user + system of every thread of the proxy "
                "per GiB received by iperf3; `direct` is iperf3 with no proxy.\n\n")
        f.write("| case | proxy | Gbit/s | proxy CPU s/GiB | retransmits | peak RSS MiB | ok runs |\n")
        f.write("|---|---|---|---|---|---|---|\n")
        for r in rows:
            direct = kinds[r["proxy"]] == "direct"
            f.write(f"| {r['case']} | {r['proxy']} | {e2e.fmt(r['gbps'], 2)} | "
                    f"{'–' if direct else e2e.fmt(r['cpu_s_per_gib'], 3)} | {e2e.fmt(r['retransmits'], 0)} | "
                    f"{'–' if direct else e2e.fmt(r['peak_rss_mib'], 1)} | {r['ok']}/{r['runs']} |\n")
        base = {r["case"]: r for r in rows if r["proxy"] == "haproxy"}
        ringlbs = [c.name for c in contenders if c.kind == "ringlb"]
        if base and ringlbs:
            f.write("\n## ringlb against HAProxy (default settings)\n\n"
                    "Throughput above 1 and CPU per GiB below 1 favour ringlb.\n\n"
                    "| case | variant | Gbit/s ratio | CPU s/GiB ratio |\n|---|---|---|---|\n")
            for r in rows:
                if r["proxy"] in ringlbs and r["case"] in base:
                    b = base[r["case"]]
                    f.write(f"| {r['case']} | {r['proxy']} | {e2e.fmt(ratio(r['gbps'], b['gbps']), 3)} | "
                            f"{e2e.fmt(ratio(r['cpu_s_per_gib'], b['cpu_s_per_gib']), 3)} |\n")
        mrows = [r for r in rows if r["proxy"] in ringlbs and r["bytes_per_recv"] is not None]
        if mrows:
            f.write("\n## ringlb's /metrics\n\nBytes proxied per recv completion (both directions, "
                    f"so at most --buffer-size) and buffer waits (a recv waiting for a free buffer).\n\n"
                    "| case | variant | bytes per recv | buffer waits |\n|---|---|---|---|\n")
            for r in mrows:
                f.write(f"| {r['case']} | {r['proxy']} | {e2e.fmt(r['bytes_per_recv'], 0)} | "
                        f"{e2e.fmt(r['buffer_waits'], 0)} |\n")
        errors = [(r["case"], r["proxy"], e) for r in rows for e in r["errors"]]
        if errors:
            f.write("\n## Failed runs\n\n" + "".join(f"- {c} {p}: {e}\n" for c, p, e in errors))
        f.write("\n![Gbit/s](gbps.png)\n![proxy CPU per GiB](cpu.png)\n")


def write_charts(out, rows, contenders):
    cases = list(dict.fromkeys(r["case"] for r in rows))

    def value(metric):
        def get(case, name):
            v = [r[metric] for r in rows if r["case"] == case and r["proxy"] == name]
            return v[0] if v else None
        return get
    names = [c.name for c in contenders]
    e2e.bar_chart(os.path.join(out, "gbps.png"), "iperf3 through each proxy: Gbit/s", "Gbit/s",
                  "parallel streams, direction", cases, names, value("gbps"), key="outside right top")
    e2e.bar_chart(os.path.join(out, "cpu.png"), "proxy CPU seconds per GiB", "CPU s/GiB",
                  "parallel streams, direction", cases,
                  [c.name for c in contenders if c.kind != "direct"], value("cpu_s_per_gib"),
                  key="outside right top")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("contenders", nargs="*", help="NAME=RINGLB-ARGS, haproxy, haproxy-splice, "
                    "haproxy-splice-rr, nginx, direct")
    ap.add_argument("--streams", default="1,8", help="iperf3 -P values")
    ap.add_argument("--directions", default="c2s,s2c", help="c2s (client sends), s2c (iperf3 -R)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ringlb", help="ringlb binary (default: build this tree's, bazel -c opt)")
    ap.add_argument("--short", action="store_true", help="CI smoke: 1 s, 1 round, 1 stream")
    ap.add_argument("--out", help="results directory (default bench/results/bulk)")
    args = ap.parse_args()
    if args.short:
        args.seconds, args.repeat, args.streams = 1, 1, "1"
    out = args.out or (tempfile.mkdtemp(prefix="ringlb-bulk-") if args.short
                       else os.path.join(e2e.ROOT, "bench", "results", "bulk"))
    specs = args.contenders or ["ringlb=", "haproxy", "haproxy-splice", "haproxy-splice-rr", "nginx", "direct"]
    streams = [int(s) for s in args.streams.split(",")]
    directions = args.directions.split(",")
    if set(directions) - {"c2s", "s2c"}:
        sys.exit("--directions: c2s and/or s2c")

    signal.signal(signal.SIGINT, e2e.on_signal)
    signal.signal(signal.SIGTERM, e2e.on_signal)
    if args.ringlb:
        e2e.RINGLB = os.path.abspath(args.ringlb)
    elif any(s not in HAPROXY_VARIANTS and s not in ("nginx", "direct") for s in specs):
        e2e.build_ringlb()
    e2e.raise_fd_limit()
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ringlb-bulk-")
    runs = []
    try:
        start_iperf_server(tmp)
        contenders = start_contenders(specs, tmp)
        time.sleep(0.5)
        for rep in range(args.repeat):
            for k, (s, d) in enumerate((s, d) for s in streams for d in directions):
                shift = (rep + k) % len(contenders)
                for c in contenders[shift:] + contenders[:shift]:
                    r = run_one(c, s, d, args.seconds)
                    r["rep"] = rep
                    runs.append(r)
                    print(f"[{rep + 1}/{args.repeat}] {case_name(s, d):8} {c.name:18} "
                          f"{e2e.fmt(r.get('gbps'), 2):>7} Gbit/s  CPU {e2e.fmt(r.get('cpu_s_per_gib'), 3)} s/GiB"
                          f"  retr {e2e.fmt(r.get('retransmits'), 0)}" +
                          (f"  ERROR {r['error']}" if r.get("error") else ""), flush=True)
                    time.sleep(0.5 if args.short else 1)
    finally:
        e2e.stop_all()
    names = [c.name for c in contenders]
    rows = summarize(runs, names)
    meta = {"cpus": os.cpu_count(), "kernel": os.uname().release, "repeat": args.repeat,
            "seconds": args.seconds, "iperf": subprocess.run(["iperf3", "--version"], capture_output=True,
                                                             text=True).stdout.split("(")[0].strip(),
            "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                               if l.startswith("model name")), "?"),
            "command": "python3 bench/bulk.py " + shlex.join(sys.argv[1:])}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs, "summary": rows}, f, indent=1)
    write_markdown(os.path.join(out, "results.md"), rows, contenders, meta)
    write_charts(out, rows, contenders)
    print(open(os.path.join(out, "results.md")).read())
    print(f"written to {out}")
    failed = [r for r in runs if r.get("error") or not r["bytes"]]
    if failed:
        print(f"{len(failed)} run(s) failed or moved no bytes", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
