#!/usr/bin/env python3
"""End-to-end benchmark: ringlb against HAProxy 2.6 (mode tcp), nginx stream and no proxy.

Starts an nginx HTTP backend, then each proxy in turn with the same thread count in front of it,
and drives each with wrk in keep-alive and `Connection: close` modes at several concurrencies,
repeated and interleaved so that drift on this shared machine hits every proxy alike. For each
run it records wrk's requests/s, p50 and p99, and the proxy's own CPU time per request (from
/proc/PID/stat; with `perf stat -p PID` instructions and cycles too where the machine exposes
hardware counters). It also measures resident memory per idle proxied connection.

Every process it starts is stopped at the end, also on Ctrl-C; each wrk run is bounded in time.
Writes results.json, results.md and PNG charts into --out.
"""
import argparse
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RINGLB = os.path.join(ROOT, "bazel-bin", "server", "ringlb")
BACKEND_PORT = 18280
# The same backend behind a `proxy_protocol` listener: for proxies that send a PROXY header.
PROXY_PROTOCOL_BACKEND_PORT = 18281
PROXY_PORT = {"ringlb": 18200, "haproxy": 18201, "nginx": 18202, "direct": BACKEND_PORT}
CLK_TCK = os.sysconf("SC_CLK_TCK")
# What start_proxy gives ringlb unless its extra arguments name the option.
RINGLB_DEFAULTS = {"--max-connections": "9500", "--metrics-listen": "none", "--backlog": "4096"}

children = []


def build_ringlb():
    """bazel-bin follows the last configuration built (an ASan build after the sanitizer tests):
    always build the optimised binary first."""
    subprocess.run(["bazel", "build", "-c", "opt", "//server:ringlb"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_all():
    for p in children:
        if p.poll() is None:
            p.terminate()
    deadline = time.time() + 5
    for p in children:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
    children.clear()


def on_signal(signum, frame):
    stop_all()
    sys.exit(130)


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def spawn(argv, **kw):
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    children.append(p)
    return p


def nginx_main(tmp, name, workers, pin=False):
    """The top of an nginx config: processes, limits, and pid and log files named after `name`."""
    return f"""worker_processes {workers};
{"worker_cpu_affinity auto;" if pin else ""}
worker_rlimit_nofile 65536;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log;
daemon off;
events {{ worker_connections 30000; }}
"""


def start_backend(tmp, workers):
    conf = os.path.join(tmp, "backend.conf")
    with open(conf, "w") as f:
        f.write(nginx_main(tmp, "backend", workers) + f"""http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_header_timeout 300s;
  server {{ listen 127.0.0.1:{BACKEND_PORT} backlog=4096;
           listen 127.0.0.1:{PROXY_PROTOCOL_BACKEND_PORT} backlog=4096 proxy_protocol;
           location / {{ return 200 "hello from the backend\\n"; }} }}
}}
""")
    p = spawn(["nginx", "-c", conf, "-p", tmp])
    if not wait_port(BACKEND_PORT):
        sys.exit("backend nginx did not start: " + p.stderr.read().decode(errors="replace"))
    return p


def start_proxy(name, tmp, threads, pin=False, port=None, extra=(), send_proxy=None,
                backend_port=None):
    """pin: each proxy binds its threads to CPUs 0..threads-1 the way its documentation says
    (ringlb --cpu-affinity auto, HAProxy cpu-map, nginx worker_cpu_affinity auto).
    port: instead of PROXY_PORT[name]; extra: more ringlb arguments (one of RINGLB_DEFAULTS there
    replaces its value), or for HAProxy more lines of its `defaults` section.
    send_proxy: "v1" or "v2" to send a PROXY header (ringlb and HAProxy) to the backend's
    proxy_protocol listener. backend_port: another backend than the nginx one (bench/bulk.py's
    iperf3 server)."""
    port = port or PROXY_PORT[name]
    setting = {None: "", "v1": "send-proxy", "v2": "send-proxy-v2"}[send_proxy]
    backend_port = backend_port or (PROXY_PROTOCOL_BACKEND_PORT if send_proxy else BACKEND_PORT)
    if name == "direct":
        return None
    if name == "ringlb":
        argv = [RINGLB, "--listen", f"127.0.0.1:{port}", "--backend",
                f"127.0.0.1:{backend_port}" + (f",{setting}" if setting else ""),
                "--workers", str(threads)] + \
            [w for k, v in RINGLB_DEFAULTS.items() if k not in extra for w in (k, v)] + \
            (["--cpu-affinity", "auto"] if pin else []) + list(extra)
    elif name == "haproxy":
        conf = os.path.join(tmp, "haproxy.cfg")
        defaults_extra = "".join(f"  {line}\n" for line in extra)
        with open(conf, "w") as f:
            f.write(f"""global
  nbthread {threads}
{f"  cpu-map auto:1/1-{threads} 0-{threads - 1}" if pin else ""}
  maxconn {haproxy_maxconn()}
defaults
  mode tcp
  timeout connect 2s
  timeout client 5m
  timeout server 5m
{defaults_extra}frontend fe
  bind 127.0.0.1:{port}
  backlog 4096
  default_backend be
backend be
  server s1 127.0.0.1:{backend_port} {setting}
""")
        # cpu-map takes effect in master-worker mode (-W) only: the pinned worker is a child.
        argv = ["haproxy", "-db", "-f", conf] + (["-W"] if pin else [])
    elif name == "nginx":
        if send_proxy:
            raise ValueError("send_proxy is measured for ringlb and HAProxy only")
        conf = os.path.join(tmp, "stream.conf")
        with open(conf, "w") as f:
            f.write("load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n" +
                    nginx_main(tmp, "stream", threads, pin) + f"""stream {{
  upstream be {{ server 127.0.0.1:{backend_port}; }}
  server {{ listen 127.0.0.1:{port} backlog=4096; proxy_pass be; proxy_timeout 5m; }}
}}
""")
        argv = ["nginx", "-c", conf, "-p", tmp]
    else:
        raise ValueError(name)
    p = spawn(argv)
    if not wait_port(port):
        sys.exit(f"{name} did not start: " + p.stderr.read().decode(errors="replace"))
    return p


def raise_fd_limit(want=65536):
    """HAProxy's maxconn 9500 needs about 24k descriptors: raise the limit to `want` where allowed
    (root may go above the hard limit), else to the hard limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def haproxy_maxconn():
    """9500, or less where the descriptor limit is lower than the ~24k HAProxy then asks for
    (two per connection and, with splicing, maxconn / 4 pipes of two)."""
    return max(100, min(9500, (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 1000) * 2 // 5))


def process_tree(pid):
    """The pid and its children (nginx runs its workers as children)."""
    out = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        out += [int(k) for k in kids]
    except OSError:
        pass
    return out


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total / CLK_TCK


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def perf_supported():
    try:
        r = subprocess.run(["perf", "stat", "-x,", "-e", "instructions", "true"],
                           capture_output=True, text=True, timeout=10)
        return r.returncode == 0 and "not supported" not in r.stderr and "<not" not in r.stderr
    except (OSError, subprocess.TimeoutExpired):
        return False


def parse_wrk(text):
    def dur(v, unit):
        v = float(v)
        return v * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else 0.0
    for q in ("50", "99"):
        m = re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)\b", text)
        out[f"p{q}_ms"] = dur(*m.groups()) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    return out


def run_wrk(port, mode, conc, seconds, wrk_threads, perf_pid):
    argv = ["wrk", f"-t{min(wrk_threads, conc)}", f"-c{conc}", f"-d{seconds}s", "--latency",
            "--timeout", "5s"]
    if mode == "close":
        argv += ["-H", "Connection: close"]
    argv.append(f"http://127.0.0.1:{port}/")
    perf = None
    if perf_pid:
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "instructions,cycles", "-p",
                                 str(perf_pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    res = parse_wrk(r.stdout)
    if perf:
        perf.send_signal(signal.SIGINT)
        err = perf.communicate(timeout=10)[1]
        for line in err.splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[0].isdigit():
                res[parts[2]] = int(parts[0])
    return res


def idle_memory(name, proxy_pids, count):
    """RSS growth of the proxy per idle proxied connection."""
    port = PROXY_PORT[name]
    before = rss_kib(proxy_pids)
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.connect(("127.0.0.1", port))
            socks.append(s)
        time.sleep(2.0)  # let the proxy connect every one upstream
        after = rss_kib(proxy_pids)
    finally:
        for s in socks:
            s.close()
    return {"rss_before_kib": before, "rss_after_kib": after,
            "bytes_per_conn": (after - before) * 1024 / count}


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(runs):
    groups = {}
    for r in runs:
        groups.setdefault((r["mode"], r["conc"], r["proxy"]), []).append(r)
    rows = []
    for (mode, conc, proxy), rs in sorted(groups.items()):
        row = {"mode": mode, "conc": conc, "proxy": proxy, "n": len(rs),
               "rps": median([r["rps"] for r in rs]),
               "p50_ms": median([r["p50_ms"] for r in rs]),
               "p99_ms": median([r["p99_ms"] for r in rs]),
               "cpu_us_per_req": median([r.get("cpu_us_per_req") for r in rs]),
               "errors": sum(r["socket_errors"] + r["non2xx"] for r in rs)}
        if any("instructions" in r for r in rs):
            row["instr_per_req"] = median([r.get("instructions", 0) / max(1, r["requests"]) for r in rs])
            row["cycles_per_req"] = median([r.get("cycles", 0) / max(1, r["requests"]) for r in rs])
        rows.append(row)
    return rows


def fmt(v, digits=1):
    return "–" if v is None else f"{v:,.{digits}f}"


def write_markdown(path, rows, memory, meta):
    with open(path, "w") as f:
        f.write(f"# ringlb end-to-end benchmark\n\n")
        f.write(f"Machine: {meta['cpus']} CPUs ({meta['cpu_model']}), kernel {meta['kernel']}. "
                f"Proxy threads: {meta['threads']}. Each cell is the median of {meta['repeat']} "
                f"interleaved {meta['seconds']}s wrk runs. Command: `{meta['command']}`\n\n")
        if not meta["perf"]:
            f.write("Hardware counters are not exposed on this machine (`perf stat -e instructions` "
                    "says <not supported>), so CPU cost is the proxy's own user+system CPU time "
                    "per request from /proc/PID/stat.\n\n")
        cols = ["mode", "conns", "proxy", "req/s", "p50 ms", "p99 ms", "proxy CPU µs/req"]
        if any("instr_per_req" in r for r in rows):
            cols += ["instr/req", "cycles/req"]
        cols.append("errors")
        f.write("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n")
        for r in rows:
            cells = [r["mode"], str(r["conc"]), r["proxy"], fmt(r["rps"], 0), fmt(r["p50_ms"], 3),
                     fmt(r["p99_ms"], 3),
                     "–" if r["proxy"] == "direct" else fmt(r["cpu_us_per_req"], 2)]
            if "instr/req" in cols:
                cells += [fmt(r.get("instr_per_req"), 0), fmt(r.get("cycles_per_req"), 0)]
            cells.append(str(r["errors"]))
            f.write("| " + " | ".join(cells) + " |\n")
        if memory:
            f.write(f"\n## Memory per idle proxied connection ({meta['idle']} connections)\n\n")
            f.write("| proxy | RSS before KiB | RSS with idle conns KiB | bytes per connection |\n|---|---|---|---|\n")
            for name, m in memory.items():
                f.write(f"| {name} | {m['rss_before_kib']:,} | {m['rss_after_kib']:,} | {m['bytes_per_conn']:,.0f} |\n")


def bar_chart(png, title, ylabel, xlabel, groups, series, value, key="top left"):
    """A clustered histogram through gnuplot: one cluster per group (x axis), one bar per series;
    value(group, series) is a number or None (no bar). Shared by bench/bulk.py."""
    series = [s for s in series if any(value(g, s) is not None for g in groups)]  # gnuplot: no empty ones
    if not series:
        return
    tmp = tempfile.mkdtemp()
    data = os.path.join(tmp, "chart.dat")
    with open(data, "w") as f:
        f.write("# group " + " ".join(series) + "\n")
        for g in groups:
            vals = [value(g, s) for s in series]
            f.write(f'"{g}" ' + " ".join("NaN" if v is None else str(v) for v in vals) + "\n")
    plots = ", ".join(f"'{data}' using 2+{i}:xtic(1) title '{n}'" for i, n in enumerate(series))
    script = f"""set terminal pngcairo size 800,450
set output '{png}'
set title '{title}'
set style data histogram
set style histogram cluster gap 1
set style fill solid border -1
set key {key}
set grid ytics
set ylabel '{ylabel}'
set xlabel '{xlabel}'
set yrange [0:*]
plot {plots}
"""
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    if r.returncode:
        print(f"gnuplot failed on {png}: {r.stderr.strip()}", file=sys.stderr)


def write_charts(out, rows, proxies):
    for mode in sorted({r["mode"] for r in rows}):
        for metric, label, fname in (("rps", "requests/s", "rps"), ("p99_ms", "p99 latency (ms)", "p99"),
                                     ("cpu_us_per_req", "proxy CPU µs per request", "cpu")):
            names = [p for p in proxies if not (metric == "cpu_us_per_req" and p == "direct")]
            concs = sorted({r["conc"] for r in rows if r["mode"] == mode})

            def value(c, p):
                v = [r[metric] for r in rows if r["mode"] == mode and r["conc"] == c and r["proxy"] == p]
                return v[0] if v else None
            bar_chart(os.path.join(out, f"{mode}-{fname}.png"), f"{mode}: {label} by concurrent connections",
                      label, "concurrent connections", concs, names, value)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", default="ringlb,haproxy,nginx,direct")
    ap.add_argument("--modes", default="keepalive,close")
    ap.add_argument("--conns", default="10,100,1000")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="worker threads of every proxy")
    ap.add_argument("--pin", action="store_true",
                    help="pin each proxy's threads to CPUs 0..threads-1 (its own affinity setting)")
    ap.add_argument("--backend-workers", type=int, default=1)
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--idle", type=int, default=9000,
                    help="idle connections for the memory test (0: skip); each proxy holds two fds per connection, so the fd limit bounds it")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    build_ringlb()
    raise_fd_limit()
    os.makedirs(args.out, exist_ok=True)
    proxies = args.proxies.split(",")
    modes = args.modes.split(",")
    concs = [int(c) for c in args.conns.split(",")]
    perf = perf_supported()
    tmp = tempfile.mkdtemp(prefix="ringlb-bench-")
    runs, memory = [], {}
    try:
        start_backend(tmp, args.backend_workers)
        procs = {}
        for name in proxies:
            procs[name] = start_proxy(name, tmp, args.threads, args.pin)
        time.sleep(0.5)
        for rep in range(args.repeat):
            for mode in modes:
                for conc in concs:
                    order = proxies[rep % len(proxies):] + proxies[:rep % len(proxies)]
                    for name in order:
                        p = procs[name]
                        pids = process_tree(p.pid) if p else []
                        cpu0 = cpu_seconds(pids)
                        res = run_wrk(PROXY_PORT[name], mode, conc, args.seconds, args.wrk_threads,
                                      p.pid if (p and perf) else None)
                        cpu = cpu_seconds(pids) - cpu0
                        res.update(proxy=name, mode=mode, conc=conc, rep=rep,
                                   cpu_us_per_req=(cpu * 1e6 / res["requests"]) if (p and res["requests"]) else None)
                        runs.append(res)
                        print(f"[{rep + 1}/{args.repeat}] {mode:9} c={conc:<5} {name:8} "
                              f"{res['rps']:>10,.0f} req/s  p99 {fmt(res['p99_ms'], 3)} ms  "
                              f"cpu/req {fmt(res['cpu_us_per_req'], 2)} µs  errors {res['socket_errors']}",
                              flush=True)
                        time.sleep(1)  # let TIME_WAIT and backlog settle between runs
        if args.idle:
            for name in proxies:
                if procs[name] is None:
                    continue
                memory[name] = idle_memory(name, process_tree(procs[name].pid), args.idle)
                print(f"idle {name}: {memory[name]['bytes_per_conn']:,.0f} bytes per connection", flush=True)
                time.sleep(2)
    finally:
        stop_all()
    rows = summarize(runs)
    meta = {"cpus": os.cpu_count(), "kernel": os.uname().release, "threads": args.threads,
            "repeat": args.repeat, "seconds": args.seconds, "perf": perf, "idle": args.idle,
            "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
            "command": "python3 bench/e2e.py " + " ".join(sys.argv[1:])}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "runs": runs, "summary": rows, "memory": memory}, f, indent=1)
    write_markdown(os.path.join(args.out, "results.md"), rows, memory, meta)
    write_charts(args.out, rows, proxies)
    print(open(os.path.join(args.out, "results.md")).read())


if __name__ == "__main__":
    main()
