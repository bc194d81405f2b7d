#!/usr/bin/env python3
"""A soak with faults: hash-checked two-way streams through ringlb while things go wrong.

Load (client processes, each with threads, every stream bounded in size and time):
  * two-way streams: the client uploads `up` bytes and half-closes, the backend sends `down`
    bytes while it reads, then a trailer saying whether the upload arrived whole and in order;
    the client checks every downloaded byte against the same pattern (a seeded window into one
    random block, so a reordered or lost byte shows);
  * mixed in at random: slow readers (small reads with pauses), client resets (SO_LINGER 0 in the
    middle, deliberately broken and not checked), a PROXY v1 header first (an accept-proxy
    listener), a real TLS ClientHello first (an SNI listener; the backend skips the record).
Faults during the load:
  * a backend killed (SIGKILL) and restarted every few seconds, in turn;
  * a reload (SIGHUP, weights changed in the file) every few seconds;
  * a takeover halfway (a second ringlb takes the listeners; the first drains and exits);
  * a backend whose health flaps (its listener closed and reopened).
Asserts:
  * 0 corrupted bytes on any stream, and 0 lost bytes on streams whose backend was not killed
    and that were not reset on purpose;
  * at every scrape, accepted - closed - live is between 0 and the hand-offs that can be in
    flight (the acceptor counts a connection before a worker holds it), and exactly 0 at the end;
  * at the end, open direct slots and buffers in use are 0, and the fd count and RSS are back
    near their baseline.
Prints "soak: clean" or "soak: FAILED ..." last, and writes a JSON summary with --out.

  bench/soak.py                 # full: 10 minutes, at least 10 GiB
  bench/soak.py --ci            # CI: about 60 s, 1 GiB
"""
import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK_SIZE = 1 << 22
CHUNK = 1 << 16
TRAILER = 8  # b"UPLOADOK" or b"UPLOADBAD"[:8]


def make_block():
    rnd = random.Random(20261201)
    block = rnd.randbytes(BLOCK_SIZE)
    return block + block[:CHUNK]  # any window of CHUNK bytes is contiguous


BLOCK = make_block()


def window(seed, offset, n):
    start = (seed * 1000003 + offset) % BLOCK_SIZE
    return BLOCK[start:start + n]


# ----------------------------------------------------------------------------- backend

def backend_conn(conn, ident):
    conn.settimeout(60)
    try:
        f = b""
        # A TLS record first (the ClientHello the SNI listener read): skipped whole.
        while len(f) < 5:
            got = conn.recv(5 - len(f))
            if not got:
                return
            f += got
        if f[0] == 0x16:
            length = struct.unpack("!H", f[3:5])[0]
            while length > 0:
                got = conn.recv(min(length, CHUNK))
                if not got:
                    return
                length -= len(got)
            f = b""
        while not f.endswith(b"\n"):
            got = conn.recv(1)
            if not got:
                return
            f += got
        _, seed, up, down = f.split()
        seed, up, down = int(seed), int(up), int(down)
        conn.sendall(b"%-16d" % ident)
        ok = [True]

        def read_upload():
            got_n = 0
            while True:
                try:
                    data = conn.recv(CHUNK)
                except OSError:  # a reset, or the socket closed under us: the upload is short
                    break
                if not data:
                    break
                if data != window(seed, got_n, len(data)):
                    ok[0] = False
                got_n += len(data)
            if got_n != up:
                ok[0] = False

        reader = threading.Thread(target=read_upload, daemon=True)
        reader.start()
        sent = 0
        while sent < down:
            n = min(CHUNK, down - sent)
            conn.sendall(window(seed ^ 0x5A5A, sent, n))
            sent += n
        reader.join(60)
        conn.sendall(b"UPLOADOK" if ok[0] else b"UPLOADBA")
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)
    except OSError:
        pass
    finally:
        conn.close()


def backend_main(port, flap_seconds):
    """One backend process. With flap_seconds, its listener is closed for that long in turn, so
    health checks see it come and go."""
    ident = os.getpid()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", port))
        ls.listen(512)
        ls.settimeout(0.2)
        until = time.time() + flap_seconds if flap_seconds else float("inf")
        while time.time() < until:
            try:
                c, _ = ls.accept()
            except socket.timeout:
                continue
            threading.Thread(target=backend_conn, args=(c, ident), daemon=True).start()
        ls.close()
        time.sleep(flap_seconds)


# ----------------------------------------------------------------------------- client

def client_hello(name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def one_stream(rnd, ports, hello, max_bytes):
    """Returns (kind, uploaded+downloaded bytes checked, backend ident, outcome)."""
    kind = rnd.choice(["plain"] * 5 + ["proxy", "tls"])
    slow = rnd.random() < 0.1
    reset = rnd.random() < 0.05
    seed = rnd.getrandbits(40)
    up = rnd.choice([0, rnd.randrange(1, max_bytes)])
    down = rnd.randrange(0, max_bytes)
    s = socket.socket()
    s.settimeout(30)
    ident = None
    try:
        s.connect(("127.0.0.1", ports[kind]))
        if kind == "proxy":
            s.sendall(b"PROXY TCP4 192.0.2.%d 127.0.0.1 %d 80\r\n" % (rnd.randrange(1, 255), rnd.randrange(1024, 65535)))
        elif kind == "tls":
            s.sendall(hello)
        s.sendall(b"SOAK %d %d %d\n" % (seed, up, down))
        result = {}

        def upload():
            sent = 0
            try:
                while sent < up:
                    n = min(CHUNK, up - sent)
                    s.sendall(window(seed, sent, n))
                    sent += n
                s.shutdown(socket.SHUT_WR)  # the half-close: the backend's reader ends here
            except OSError as e:
                result["upload_error"] = str(e)

        t = threading.Thread(target=upload, daemon=True)
        t.start()
        got = b""
        while len(got) < 16:
            data = s.recv(16 - len(got))
            if not data:
                break
            got += data
        if len(got) < 16:
            t.join(30)
            return kind, 0, None, "no_backend" if not got else "short"
        ident = int(got)
        received = 0
        tail = b""
        reset_at = rnd.randrange(0, max(1, down)) if reset else None
        while True:
            data = s.recv(4096 if slow else CHUNK)
            if not data:
                break
            if slow:
                time.sleep(0.002)
            body = data
            if received + len(body) > down:
                keep = max(0, down - received)
                tail += body[keep:]
                body = body[:keep]
            if body and body != window(seed ^ 0x5A5A, received, len(body)):
                return kind, received, ident, "corrupt"
            received += len(body)
            if reset_at is not None and received >= reset_at:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
                t.join(30)
                return kind, received, ident, "reset"
        t.join(30)
        if received < down or tail != b"UPLOADOK":
            if tail and tail != b"UPLOADOK"[:len(tail)]:
                return kind, received, ident, "corrupt_upload"
            return kind, received, ident, "short"
        return kind, received + up, ident, "ok"
    except OSError as e:
        return kind, 0, ident, "error:" + type(e).__name__
    finally:
        s.close()


def client_main(index, ports, deadline, byte_goal, max_bytes, threads, queue):
    hello = client_hello("soak.example")
    lock = threading.Lock()
    total = [0]

    def loop(t):
        rnd = random.Random(index * 1000 + t)
        while time.time() < deadline:
            started = time.time()
            kind, n, ident, outcome = one_stream(rnd, ports, hello, max_bytes)
            with lock:
                total[0] += n
            queue.put((kind, n, ident, outcome, started, time.time()))

    ts = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    queue.put(None)


# ----------------------------------------------------------------------------- controller

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{")[0]
        values[name] = values.get(name, 0.0) + float(value)
        if name == "ringlb_connections_closed_total" and 'reason="' in name_labels:
            reason = name_labels.split('reason="')[1].split('"')[0]
            values["closed:" + reason] = values.get("closed:" + reason, 0.0) + float(value)
    return values


def write_config(path, tmp, ports, backends, metrics_port, weights, control):
    entries = ",\n  ".join('"127.0.0.1:%d,weight=%d"' % (p, w) for p, w in zip(backends, weights))
    with open(path + ".new", "w") as f:
        f.write(f"""workers = 2
max-connections = 4000
drain-timeout = "120s"
metrics-listen = "127.0.0.1:{metrics_port}"
control-socket = "{control}"
connect-attempts = 3
health-interval = "300ms"
health-timeout = "200ms"
health-rise = 1
health-fall = 1

[cluster.soak]
backends = [
  {entries}
]

[[listener]]
name = "plain"
address = "127.0.0.1:{ports['plain']}"
cluster = "soak"

[[listener]]
name = "proxy"
address = "127.0.0.1:{ports['proxy']}"
cluster = "soak"
accept-proxy = true

[[listener]]
name = "tls"
address = "127.0.0.1:{ports['tls']}"
sni = [{{ name = "soak.example", cluster = "soak" }}]
""")
    os.replace(path + ".new", path)


def proc_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def proc_rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ci", action="store_true", help="short mode: 60 s, 1 GiB")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--gib", type=float, default=None)
    ap.add_argument("--clients", type=int, default=4, help="client processes")
    ap.add_argument("--threads", type=int, default=6, help="streams at once per client process")
    ap.add_argument("--max-stream-mib", type=float, default=None)
    ap.add_argument("--binary", default=os.path.join(ROOT, "bazel-bin", "server", "ringlb"))
    ap.add_argument("--out", default=None, help="write the summary JSON here")
    args = ap.parse_args()
    seconds = args.seconds or (60 if args.ci else 600)
    gib = args.gib or (1 if args.ci else 10)
    max_bytes = int((args.max_stream_mib or (8 if args.ci else 32)) * (1 << 20))

    tmp = tempfile.mkdtemp(prefix="ringlb-soak-")
    procs = []

    def stop_all():
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass

    failures = []
    try:
        ports = {k: free_port() for k in ("plain", "proxy", "tls")}
        backend_ports = [free_port() for _ in range(4)]  # the last one flaps
        metrics = [free_port(), free_port()]
        controls = [os.path.join(tmp, "a.sock"), os.path.join(tmp, "b.sock")]
        conf = os.path.join(tmp, "ringlb.toml")
        backends = {}

        def start_backend(i):
            flap = 2.0 if i == len(backend_ports) - 1 else 0
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--backend-port",
                                  str(backend_ports[i]), "--flap", str(flap)])
            procs.append(p)
            backends[i] = p
            return p

        for i in range(len(backend_ports)):
            start_backend(i)
        for port in backend_ports:  # listening before ringlb's first check and first client
            deadline0 = time.time() + 10
            while time.time() < deadline0:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.05)
        weights = [1, 1, 1, 1]
        write_config(conf, tmp, ports, backend_ports, metrics[0], weights, controls[0])
        log_a = open(os.path.join(tmp, "a.log"), "w")
        lb = subprocess.Popen([args.binary, "--config", conf], stderr=log_a)
        procs.append(lb)
        time.sleep(1.0)
        if lb.poll() is not None:
            raise SystemExit("soak: FAILED ringlb did not start: " + open(os.path.join(tmp, "a.log")).read())
        base = scrape(metrics[0])
        baseline = {"fds": proc_fds(lb.pid), "rss_kib": proc_rss_kib(lb.pid)}

        deadline = time.time() + seconds
        queue = mp.Queue()
        goal = int(gib * (1 << 30) / args.clients)
        clients = [mp.Process(target=client_main, args=(i, ports, deadline, goal, max_bytes, args.threads, queue))
                   for i in range(args.clients)]
        for c in clients:
            c.start()

        killed = set()
        events = {"kills": 0, "reloads": 0, "takeovers": 0, "scrapes": 0}
        results = []
        done = 0
        current = lb
        current_metrics = metrics[0]
        old = None
        next_kill = time.time() + 3
        next_reload = time.time() + 2
        takeover_at = time.time() + seconds / 2
        pending_restart = []
        victim = 0
        while done < len(clients):
            try:
                item = queue.get(timeout=0.5)
                if item is None:
                    done += 1
                else:
                    results.append(item)
                    while True:
                        try:
                            item = queue.get_nowait()
                        except Exception:
                            break
                        if item is None:
                            done += 1
                        else:
                            results.append(item)
            except Exception:
                pass
            now = time.time()
            if now < deadline:
                if now >= next_kill:
                    i = victim % 3
                    victim += 1
                    killed.add(backends[i].pid)
                    backends[i].kill()
                    backends[i].wait()
                    pending_restart.append((now + 1.0, i))
                    events["kills"] += 1
                    next_kill = now + 6
                for at, i in list(pending_restart):
                    if now >= at:
                        start_backend(i)
                        pending_restart.remove((at, i))
                if now >= next_reload:
                    weights = [random.choice([1, 2, 3]) for _ in weights]
                    write_config(conf, tmp, ports, backend_ports, current_metrics, weights,
                                 controls[0] if current is lb else controls[1])
                    current.send_signal(signal.SIGHUP)
                    events["reloads"] += 1
                    next_reload = now + 3
                if now >= takeover_at and events["takeovers"] == 0:
                    write_config(conf, tmp, ports, backend_ports, metrics[1], weights, controls[1])
                    log_b = open(os.path.join(tmp, "b.log"), "w")
                    nb = subprocess.Popen([args.binary, "--config", conf, "--takeover", controls[0]], stderr=log_b)
                    procs.append(nb)
                    old, current, current_metrics = current, nb, metrics[1]
                    events["takeovers"] += 1
                    time.sleep(1.0)
                    # A first scrape, as for the first process: the metrics server opens a
                    # descriptor at its first request, which would otherwise show as one more fd at
                    # the end (the 12 -> 13 of earlier runs).
                    try:
                        scrape(metrics[1])
                    except OSError:
                        pass
                    # Connections live in direct descriptors, not fds: the count does not follow the
                    # load, so the new process's baseline can be taken under it.
                    baseline = {"fds": proc_fds(nb.pid), "rss_kib": proc_rss_kib(nb.pid)}
            for port in ([current_metrics] + ([metrics[0]] if old is not None and old.poll() is None else [])):
                try:
                    m = scrape(port)
                except OSError:
                    continue
                events["scrapes"] += 1
                gap = (m.get("ringlb_connections_accepted_total", 0) - m.get("ringlb_connections_closed_total", 0)
                       - m.get("ringlb_connections_active", 0))
                if gap < 0 or gap > 4096:
                    failures.append(f"scrape on :{port}: accepted - closed - active = {gap}")
        for c in clients:
            c.join(30)
        for _, i in pending_restart:
            start_backend(i)

        # The old process drains and exits on its own once its last connection is gone.
        if old is not None:
            try:
                old.wait(30)
            except subprocess.TimeoutExpired:
                failures.append("the process taken over from did not exit after draining")
            if old.returncode not in (0, None):
                failures.append(f"the process taken over from exited {old.returncode}")
        time.sleep(1.0)
        end = scrape(current_metrics)
        gap = (end.get("ringlb_connections_accepted_total", 0) - end.get("ringlb_connections_closed_total", 0)
               - end.get("ringlb_connections_active", 0))
        if gap != 0 or end.get("ringlb_connections_active", 0) != 0:
            failures.append(f"at the end: accepted - closed - active = {gap}, active = {end.get('ringlb_connections_active')}")
        for name in ("ringlb_open_direct_slots", "ringlb_proxy_buffers_in_use", "ringlb_queued_connections"):
            if end.get(name, 0) != 0:
                failures.append(f"at the end: {name} = {end.get(name)}")
        final = {"fds": proc_fds(current.pid), "rss_kib": proc_rss_kib(current.pid)}
        # +1: the end's scrape may still hold its socket in the metrics server for a moment.
        if final["fds"] > baseline["fds"] + 1:
            failures.append(f"fds {baseline['fds']} at the start, {final['fds']} at the end")
        if final["rss_kib"] > baseline["rss_kib"] + 64 * 1024:
            failures.append(f"RSS {baseline['rss_kib']} KiB at the start, {final['rss_kib']} KiB at the end")

        outcomes = {}
        checked = 0
        by_kind = {}
        for kind, n, ident, outcome, started, ended in results:
            if (outcome == "short" or outcome.startswith("error")) and ident in killed:
                outcome = "broken_by_kill"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            by_kind[kind] = by_kind.get(kind, 0) + 1
            if outcome == "ok":
                checked += n
        if checked < gib * (1 << 30):
            failures.append(f"only {checked / (1 << 30):.2f} GiB checked, below the {gib} GiB asked for")
        for bad in ("corrupt", "corrupt_upload", "short"):
            if outcomes.get(bad):
                failures.append(f"{outcomes[bad]} streams {bad}")
        # "error" without a killed backend: refused or reset by the proxy; "no_backend": every
        # attempt found a backend down (the killed or flapping ones). Both are reported; only a
        # share above 5% fails the run, since faults are meant to cause a few.
        unexplained = sum(v for k, v in outcomes.items() if k.startswith("error") or k == "no_backend")
        if results and unexplained > 0.05 * len(results):
            failures.append(f"{unexplained} of {len(results)} streams failed to connect or errored")
        t0 = deadline - seconds
        errors_at = sorted(round(started - t0, 1) for kind, n, ident, outcome, started, ended in results
                           if outcome.startswith("error") or outcome == "no_backend")
        summary = {
            "errors_at_s": errors_at[:50], "takeover_at_s": round(takeover_at - t0, 1),
            "seconds": seconds, "streams": len(results), "checked_gib": checked / (1 << 30),
            "outcomes": outcomes, "kinds": by_kind, "events": events, "baseline": baseline, "final": final,
            "closed_by_reason": {k[7:]: v for k, v in end.items() if k.startswith("closed:") and v},
            "failures": failures,
        }
        print(json.dumps(summary, indent=2))
        if args.out:
            with open(args.out, "w") as f:
                json.dump(summary, f, indent=2)
    finally:
        stop_all()
    if failures:
        print("soak: FAILED " + "; ".join(failures[:5]) + f" (logs and config kept in {tmp})")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)  # kept only when they explain a failure
    print("soak: clean")
    return 0


if __name__ == "__main__":
    if "--backend-port" in sys.argv:
        port = int(sys.argv[sys.argv.index("--backend-port") + 1])
        flap = float(sys.argv[sys.argv.index("--flap") + 1])
        backend_main(port, flap)
    else:
        sys.exit(main())
