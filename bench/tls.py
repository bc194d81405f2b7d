#!/usr/bin/env python3
"""TLS termination through each proxy: ringlb, HAProxy (bind ssl, mode tcp, 1 thread) and nginx
stream (ssl, 1 worker), side by side, all ending TLS in front of one plain nginx HTTP backend.

Cases (each contender in every round, in an order rotated per round; medians of --repeat):
  full-ecdsa   --conns parallel `openssl s_time -new`: a full TLS handshake per connection, ECDSA
               P-256 certificate (not wrk: it resumes its sessions, so its "close" mode measures
               resumptions)
  full-rsa     the same with an RSA-2048 certificate
  resumed      --conns parallel `openssl s_time -reuse`: one full handshake each, then resumed ones
  keepalive    wrk keep-alive over TLS: CPU per request once the handshake is paid
  bulk         wrk -c1 downloading a 64 MiB body over TLS: Gbit/s and the proxy's CPU per GiB
The figure compared is the proxy's own CPU (user + system of every thread and child, /proc) per
handshake, per request and per GiB; ringlb-2w (2 workers) shows how handshakes scale across
workers (OpenSSL 3.0's algorithm fetches take global locks: openssl#23388; ringlb has one SSL_CTX
per worker and fetches once).

  python3 bench/tls.py --seconds 5 --repeat 3
  python3 bench/tls.py --short            # CI smoke: 1 s, 1 round, every case once
Writes results.md and results.json into --out (bench/results/tls; with --short a temp dir).
Exits non-zero when a run failed or moved nothing.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402

BACKEND_PORT = 18380
FIRST_PORT = 18381
CONTENDERS = ["ringlb", "ringlb-2w", "haproxy", "nginx"]
CASES = ["full-ecdsa", "full-rsa", "resumed", "keepalive", "bulk"]
BIG = 64 << 20


def make_certs(tmp):
    certs = {}
    for kind, newkey in (("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                         ("rsa", ["-newkey", "rsa:2048"])):
        key, crt = os.path.join(tmp, kind + ".key"), os.path.join(tmp, kind + ".crt")
        subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", crt, "-days", "2"],
                       check=True, capture_output=True)
        with open(os.path.join(tmp, kind + ".pem"), "w") as f:  # HAProxy: chain and key in one file
            f.write(open(crt).read() + open(key).read())
        certs[kind] = (crt, key, os.path.join(tmp, kind + ".pem"))
    return certs


def start_backend(tmp):
    os.chmod(tmp, 0o755)  # nginx's workers read /big as another user
    with open(os.path.join(tmp, "big"), "wb") as f:
        f.write(os.urandom(1 << 20) * (BIG >> 20))
    os.chmod(os.path.join(tmp, "big"), 0o644)
    conf = os.path.join(tmp, "backend.conf")
    with open(conf, "w") as f:
        f.write(e2e.nginx_main(tmp, "backend", 1) + f"""http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {{ listen 127.0.0.1:{BACKEND_PORT} backlog=4096;
           location = /big {{ root {tmp}; }}
           location / {{ return 200 "hello from the backend\\n"; }} }}
}}
""")
    p = e2e.spawn(["nginx", "-c", conf, "-p", tmp])
    if not e2e.wait_port(BACKEND_PORT):
        sys.exit("backend nginx did not start")
    return p


def start(name, kind, port, certs, tmp):
    crt, key, pem = certs[kind]
    d = tempfile.mkdtemp(dir=tmp)
    if name.startswith("ringlb"):
        conf = os.path.join(d, "ringlb.toml")
        with open(conf, "w") as f:
            f.write(f"""workers = {2 if name == "ringlb-2w" else 1}
metrics = false
max-connections = 9500
backlog = 4096
buffer-size = 65536
health-interval = "0s"
[cluster.web]
backends = ["127.0.0.1:{BACKEND_PORT}"]
[[listener]]
address = "127.0.0.1:{port}"
cluster = "web"
[listener.tls]
certificates = [{{ cert = "{crt}", key = "{key}" }}]
""")
        argv = [e2e.RINGLB, "--config", conf]
    elif name == "haproxy":
        conf = os.path.join(d, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(f"""global
  nbthread 1
  maxconn {e2e.haproxy_maxconn()}
  tune.ssl.default-dh-param 2048
defaults
  mode tcp
  timeout connect 2s
  timeout client 5m
  timeout server 5m
frontend fe
  bind 127.0.0.1:{port} ssl crt {pem}
  backlog 4096
  default_backend web
backend web
  server s1 127.0.0.1:{BACKEND_PORT}
""")
        argv = ["haproxy", "-db", "-f", conf]
    else:
        conf = os.path.join(d, "stream.conf")
        with open(conf, "w") as f:
            f.write("load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n" + e2e.nginx_main(d, "stream", 1) +
                    f"""stream {{
  upstream web {{ server 127.0.0.1:{BACKEND_PORT}; }}
  ssl_session_cache shared:TLS:10m;
  server {{ listen 127.0.0.1:{port} ssl backlog=4096; ssl_certificate {crt}; ssl_certificate_key {key};
           proxy_pass web; }}
}}
""")
        argv = ["nginx", "-c", conf, "-p", d]
    p = e2e.spawn(argv)
    if not e2e.wait_port(port):
        sys.exit(f"{name} ({kind}) did not start: " + p.stderr.read().decode(errors="replace"))
    return p


def wrk(port, conc, seconds, close=False, path="/"):
    argv = ["wrk", "-t1", f"-c{conc}", f"-d{seconds}s", "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(f"https://localhost:{port}{path}")
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    r = e2e.parse_wrk(out)
    m = re.search(r"([\d.]+)\s*(\d+|)\s*([KMG]?B) read", out)
    units = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    r["bytes"] = float(m.group(1)) * units[m.group(3)] if m else 0.0
    return r


def s_time(port, seconds, parallel, mode):
    """`parallel` openssl s_time clients at once (mode "-new" or "-reuse"): connections made."""
    procs = [subprocess.Popen(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", mode, "-time", str(seconds)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(parallel)]
    n, errors = 0, 0
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 30)
        m = re.search(r"(\d+) connections in \d+ real seconds", out)
        if m and int(m.group(1)) > 0:
            n += int(m.group(1))
        else:
            errors += 1
        marks = "".join(line for line in out.splitlines() if line and set(line) <= {"*", "."})
        if mode == "-reuse" and marks.count(".") > marks.count("*"):
            errors += 1  # mostly full handshakes ('.'), not resumed ones ('*'): no resumption
    return {"requests": n, "rps": n / seconds, "errors": errors}


def run_case(case, port, seconds, conc):
    if case in ("full-ecdsa", "full-rsa"):
        r = s_time(port, seconds, conc, "-new")
        return r["requests"], r["rps"], r["errors"], 0.0
    if case == "keepalive":
        r = wrk(port, conc, seconds)
        return r["requests"], r["rps"], r["socket_errors"] + r["non2xx"], 0.0
    if case == "bulk":
        r = wrk(port, 1, seconds, path="/big")
        return r["requests"], r["rps"], r["socket_errors"] + r["non2xx"], r["bytes"]
    r = s_time(port, seconds, conc, "-reuse")
    return r["requests"], r["rps"], r["errors"], 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--conns", type=int, default=4, help="s_time clients at once, and wrk's keep-alive connections")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--contenders", default=",".join(CONTENDERS))
    ap.add_argument("--ringlb", help="this ringlb binary instead of building one")
    ap.add_argument("--short", action="store_true")
    ap.add_argument("--out", default=os.path.join(e2e.ROOT, "bench", "results", "tls"))
    args = ap.parse_args()
    if args.short:
        args.seconds, args.repeat = 1, 1
        args.out = tempfile.mkdtemp(prefix="ringlb-tls-bench-out-")
    e2e.raise_fd_limit()
    if args.ringlb:
        e2e.RINGLB = args.ringlb
    else:
        e2e.build_ringlb()
    cases = args.cases.split(",")
    names = args.contenders.split(",")
    tmp = tempfile.mkdtemp(prefix="ringlb-tls-bench-")
    runs = {}
    try:
        certs = make_certs(tmp)
        start_backend(tmp)
        procs, ports = {}, {}
        port = FIRST_PORT
        for name in names:
            for kind in ("ecdsa", "rsa"):
                ports[(name, kind)] = port
                procs[(name, kind)] = start(name, kind, port, certs, tmp)
                port += 1
        for rep in range(args.repeat):
            for case in cases:
                kind = "rsa" if case == "full-rsa" else "ecdsa"
                order = names[rep % len(names):] + names[:rep % len(names)]
                for name in order:
                    pids = e2e.process_tree(procs[(name, kind)].pid)
                    before = e2e.cpu_seconds(pids)
                    done, rate, errors, nbytes = run_case(case, ports[(name, kind)], args.seconds, args.conns)
                    cpu = e2e.cpu_seconds(pids) - before
                    runs.setdefault((case, name), []).append(
                        {"done": done, "rate": rate, "errors": errors, "bytes": nbytes, "cpu": cpu})
                    time.sleep(0.3)
    finally:
        e2e.stop_all()
    lines = [f"# TLS termination: ringlb, HAProxy and nginx stream\n\nCommand: `python3 bench/tls.py "
             f"--seconds {args.seconds} --repeat {args.repeat} --conns {args.conns}`\n",
             "| case | proxy | rate /s | proxy CPU µs per op | Gbit/s | CPU s per GiB | errors |",
             "|---|---|---|---|---|---|---|"]
    med = {}
    bad = 0
    for case in cases:
        for name in names:
            rs = runs.get((case, name), [])
            if not rs:
                continue
            rate = statistics.median(r["rate"] for r in rs)
            us = statistics.median(r["cpu"] / r["done"] * 1e6 if r["done"] else float("nan") for r in rs)
            gbps = statistics.median(r["bytes"] * 8 / args.seconds / 1e9 for r in rs)
            per_gib = statistics.median(r["cpu"] / (r["bytes"] / (1 << 30)) if r["bytes"] else float("nan") for r in rs)
            errors = sum(r["errors"] for r in rs)
            bad += errors + sum(1 for r in rs if r["done"] == 0)
            med[(case, name)] = {"rate": rate, "us": us, "gbps": gbps, "per_gib": per_gib, "errors": errors}
            bulk = case == "bulk"
            lines.append(f"| {case} | {name} | {rate:,.0f} | {us:.1f} | {gbps:.2f} | " +
                         (f"{per_gib:.2f}" if bulk else "-") + f" | {errors} |")
    lines += ["", "ringlb's ratios (CPU per op: below 1 is cheaper; bulk: Gbit/s, above 1 is faster):", "",
              "| case | vs HAProxy | vs nginx |", "|---|---|---|"]
    for case in cases:
        if ("ringlb" not in names) or (case, "ringlb") not in med:
            continue
        cells = []
        for peer in ("haproxy", "nginx"):
            if (case, peer) not in med:
                cells.append("-")
                continue
            a, b = med[(case, "ringlb")], med[(case, peer)]
            cells.append(f"{a['gbps'] / b['gbps']:.2f}" if case == "bulk" and b["gbps"] else f"{a['us'] / b['us']:.2f}")
        lines.append(f"| {case} | {cells[0]} | {cells[1]} |")
    if ("full-ecdsa", "ringlb-2w") in med and ("full-ecdsa", "ringlb") in med:
        s = med[("full-ecdsa", "ringlb-2w")]["rate"] / med[("full-ecdsa", "ringlb")]["rate"]
        lines += ["", f"Full ECDSA handshakes/s, 2 workers over 1: {s:.2f}× (wrk shares the 2 cores)."]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({f"{c}/{n}": v for (c, n), v in med.items()}, f, indent=1)
    print("\n".join(lines))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
