#!/usr/bin/env python3
"""What SNI routing costs a proxy per connection: TLS through the proxy, `Connection: close`.

An nginx HTTPS backend (self-signed certificate made at start, 1 worker) answers a small body;
wrk (its TLS client sends SNI "localhost") opens a new TLS connection per request through each
proxy, which either passes the bytes through untouched ("-plain") or reads the ClientHello and
routes by server name ("-sni"):

  ringlb-sni      [[listener]] sni = [{name = "localhost", cluster = "web"}, {name = "*.example.com", ...}]
  haproxy-sni     tcp-request inspect-delay + req.ssl_sni (use_backend ... if { req.ssl_sni -i localhost })
  nginx-sni       stream ssl_preread on + map $ssl_preread_server_name

The proxies do no TLS themselves: the handshake's cost is the backend's and wrk's. The table
gives the proxy's CPU per connection (user + system, /proc) and the difference SNI makes,
medians of --repeat interleaved rounds.

  python3 bench/sni.py --conns 10,100 --seconds 5 --repeat 3
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402

TLS_BACKEND_PORT = 18290
PORTS = {"ringlb-plain": 18291, "ringlb-sni": 18292, "haproxy-plain": 18293, "haproxy-sni": 18294,
         "nginx-plain": 18295, "nginx-sni": 18296}


def start_tls_backend(tmp):
    key, crt = os.path.join(tmp, "key.pem"), os.path.join(tmp, "crt.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", crt, "-days", "2"], check=True, capture_output=True)
    conf = os.path.join(tmp, "tls-backend.conf")
    with open(conf, "w") as f:
        f.write(e2e.nginx_main(tmp, "tls-backend", 1) + f"""http {{
  access_log off;
  server {{ listen 127.0.0.1:{TLS_BACKEND_PORT} ssl backlog=4096;
           ssl_certificate {crt}; ssl_certificate_key {key};
           location / {{ return 200 "hello over tls\\n"; }} }}
}}
""")
    p = e2e.spawn(["nginx", "-c", conf, "-p", tmp])
    if not e2e.wait_port(TLS_BACKEND_PORT):
        sys.exit("TLS backend did not start: " + p.stderr.read().decode(errors="replace"))


def start(name, tmp):
    port = PORTS[name]
    d = tempfile.mkdtemp(dir=tmp)
    if name.startswith("ringlb"):
        conf = os.path.join(d, "ringlb.toml")
        route = ('sni = [{name = "localhost", cluster = "web"}, {name = "*.example.com", cluster = "other"}]\n'
                 'sni-default = "other"' if name == "ringlb-sni" else 'cluster = "web"')
        with open(conf, "w") as f:
            f.write(f"""workers = 1
metrics = false
max-connections = 9500
backlog = 4096
health-interval = "0s"
[cluster.web]
backends = ["127.0.0.1:{TLS_BACKEND_PORT}"]
[cluster.other]
backends = ["127.0.0.1:{TLS_BACKEND_PORT}"]
[[listener]]
address = "127.0.0.1:{port}"
{route}
""")
        argv = [e2e.RINGLB, "--config", conf]
    elif name.startswith("haproxy"):
        conf = os.path.join(d, "haproxy.cfg")
        sni = name == "haproxy-sni"
        with open(conf, "w") as f:
            f.write(f"""global
  nbthread 1
  maxconn {e2e.haproxy_maxconn()}
defaults
  mode tcp
  timeout connect 2s
  timeout client 5m
  timeout server 5m
frontend fe
  bind 127.0.0.1:{port}
  backlog 4096
""" + ("""  tcp-request inspect-delay 5s
  tcp-request content accept if { req_ssl_hello_type 1 }
  use_backend web if { req.ssl_sni -i localhost }
  use_backend other if { req.ssl_sni -m end .example.com }
  default_backend other
""" if sni else "  default_backend web\n") + f"""backend web
  server s1 127.0.0.1:{TLS_BACKEND_PORT}
backend other
  server s1 127.0.0.1:{TLS_BACKEND_PORT}
""")
        argv = ["haproxy", "-db", "-f", conf]
    else:
        conf = os.path.join(d, "stream.conf")
        sni = name == "nginx-sni"
        with open(conf, "w") as f:
            f.write("load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n" +
                    e2e.nginx_main(d, "stream", 1) + f"""stream {{
  upstream web {{ server 127.0.0.1:{TLS_BACKEND_PORT}; }}
  upstream other {{ server 127.0.0.1:{TLS_BACKEND_PORT}; }}
  map $ssl_preread_server_name $up {{ localhost web; ~\\.example\\.com$ other; default other; }}
  server {{ listen 127.0.0.1:{port} backlog=4096; {"ssl_preread on; proxy_pass $up;" if sni else "proxy_pass web;"} }}
}}
""")
        argv = ["nginx", "-c", conf, "-p", d]
    p = e2e.spawn(argv)
    if not e2e.wait_port(port):
        sys.exit(f"{name} did not start: " + p.stderr.read().decode(errors="replace"))
    return p


def run(port, conc, seconds):
    argv = ["wrk", f"-t1", f"-c{conc}", f"-d{seconds}s", "--latency", "--timeout", "5s",
            "-H", "Connection: close", f"https://localhost:{port}/"]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    return e2e.parse_wrk(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", default="10,100")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ringlb", help="this ringlb binary instead of building one")
    ap.add_argument("--out", default=os.path.join(e2e.ROOT, "bench", "results", "sni"))
    args = ap.parse_args()
    e2e.raise_fd_limit()
    if args.ringlb:
        e2e.RINGLB = args.ringlb
    else:
        e2e.build_ringlb()
    tmp = tempfile.mkdtemp(prefix="ringlb-sni-")
    rows = {}
    try:
        start_tls_backend(tmp)
        procs = {name: start(name, tmp) for name in PORTS}
        concs = [int(c) for c in args.conns.split(",")]
        names = list(PORTS)
        for rep in range(args.repeat):
            for conc in concs:
                order = names[rep % len(names):] + names[:rep % len(names)]
                for name in order:
                    pids = e2e.process_tree(procs[name].pid)
                    before = e2e.cpu_seconds(pids)
                    r = run(PORTS[name], conc, args.seconds)
                    cpu = e2e.cpu_seconds(pids) - before
                    done = r["requests"]
                    rows.setdefault((conc, name), []).append(
                        (cpu / done * 1e6 if done else float("nan"), r["rps"], r["p99_ms"] or 0,
                         r["socket_errors"] + r["non2xx"]))
                    time.sleep(0.5)
    finally:
        e2e.stop_all()
    lines = [f"# SNI inspection cost\n\nCommand: `python3 bench/sni.py --conns {args.conns} "
             f"--seconds {args.seconds} --repeat {args.repeat}`\n",
             "| conns | proxy | proxy CPU µs/conn | req/s | p99 ms | errors |", "|---|---|---|---|---|---|"]
    med = {}
    for (conc, name), vals in sorted(rows.items()):
        m = [statistics.median(v[i] for v in vals) for i in range(3)] + [sum(v[3] for v in vals)]
        med[(conc, name)] = m
        lines.append(f"| {conc} | {name} | {m[0]:.2f} | {m[1]:,.0f} | {m[2]:.2f} | {m[3]} |")
    lines += ["", "| conns | proxy | SNI adds µs/conn | SNI CPU vs HAProxy's |", "|---|---|---|---|"]
    for conc in sorted({c for c, _ in rows}):
        for p in ("ringlb", "haproxy", "nginx"):
            add = med[(conc, p + "-sni")][0] - med[(conc, p + "-plain")][0]
            ratio = med[(conc, p + "-sni")][0] / med[(conc, "haproxy-sni")][0]
            lines.append(f"| {conc} | {p} | {add:+.2f} | {ratio:.2f} |")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    bad = sum(m[3] for m in med.values())
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
