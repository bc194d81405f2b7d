#!/usr/bin/env python3
"""Network faults between ringlb and its backends, in a network namespace this test creates.

The backends run in their own namespace, behind either a veth pair or a user-space link with
delay, loss and reordering (wire.py; this kernel has no sch_netem). ringlb runs here:
  * a link with 100 ms delay, 5% loss and 25% reordering: every byte of several two-way streams
    arrives intact, and no connection hits a timeout (the connect timeout is above the delayed
    handshake; the idle timeout is above the longest stall a retransmission causes);
  * a backend blackholed mid-stream (nft drops everything into its namespace): the idle timeout
    closes its clients (reason idle_timeout), and no slot, buffer or connection is left;
  * a backend whose SYN backlog is full (it never accepts): each attempt times out after the
    connect timeout and the client is served by the next backend.
Needs root (ip netns, nft, /dev/net/tun). Writes JUnit XML to $XML_OUTPUT_FILE when Bazel runs it.
"""
import hashlib
import os
import random
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.request
import xml.sax.saxutils

HERE = os.path.dirname(os.path.abspath(__file__))
RINGLB = os.environ.get("RINGLB_BINARY") or os.path.join(HERE, "..", "..", "server", "ringlb")
NS = f"rlbnf{os.getpid() % 100000}"
SUBNET = 10 + os.getpid() % 200  # 10.79.SUBNET.0/24, so parallel runs do not collide

BACKEND = r'''
import socket, sys, threading, hashlib
# A stream backend: reads "SEED UP DOWN\n", sends DOWN bytes of its pattern while it reads the
# upload, then the upload's sha256 (hex) and closes.
def pattern(seed, n):
    out = bytearray(); i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d:%d" % (seed, i)).digest(); i += 1
    return bytes(out[:n])
def serve(c):
    f = b""
    while not f.endswith(b"\n"):
        d = c.recv(1)
        if not d: return c.close()
        f += d
    seed, up, down = map(int, f.split())
    h = hashlib.sha256(); got = [0]
    def reader():
        while True:
            d = c.recv(65536)
            if not d: break
            h.update(d); got[0] += len(d)
    t = threading.Thread(target=reader); t.start()
    c.sendall(pattern(seed, down)); t.join()
    c.sendall(h.hexdigest().encode()); c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(int(sys.argv[3]))
print("listening", flush=True)
if sys.argv[4] == "accept":
    while True:
        c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
else:
    threading.Event().wait()  # never accepts: the backlog fills
'''


def pattern(seed, n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d:%d" % (seed, i)).digest()
        i += 1
    return bytes(out[:n])


def run(*argv, ns=False, check=True):
    cmd = (["ip", "netns", "exec", NS] if ns else []) + list(argv)
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Net:
    """The backends' namespace, joined to this one by a veth pair or by wire.py."""

    def __init__(self, wire=None):
        self.procs = []
        self.host_ip = f"10.79.{SUBNET}.1"
        self.ns_ip = f"10.79.{SUBNET}.2"
        run("ip", "netns", "add", NS)
        run("ip", "link", "set", "lo", "up", ns=True)
        here, there = f"{NS}h", f"{NS}n"
        if wire is None:
            run("ip", "link", "add", here, "type", "veth", "peer", "name", there)
            run("ip", "link", "set", there, "netns", NS)
        else:
            delay_ms, loss, reorder = wire
            p = subprocess.Popen([sys.executable, os.path.join(HERE, "wire.py"), here, NS, there,
                                  str(delay_ms), str(loss), str(reorder), "7"],
                                 stdout=subprocess.PIPE, text=True)
            self.procs.append(p)
            assert p.stdout.readline().strip() == "ready"
        run("ip", "addr", "add", f"{self.host_ip}/24", "dev", here)
        run("ip", "link", "set", here, "up")
        run("ip", "addr", "add", f"{self.ns_ip}/24", "dev", there, ns=True)
        run("ip", "link", "set", there, "up", ns=True)
        # A full accept queue drops SYNs either way; without cookies nothing else answers them.
        run("sysctl", "-qw", "net.ipv4.tcp_syncookies=0", ns=True)

    def backend(self, port, backlog=128, mode="accept"):
        p = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", BACKEND, self.ns_ip, str(port),
                              str(backlog), mode], stdout=subprocess.PIPE, text=True)
        self.procs.append(p)
        assert p.stdout.readline().strip() == "listening"
        return f"{self.ns_ip}:{port}"

    def close(self):
        for p in reversed(self.procs):
            p.kill()
            p.wait()
        run("ip", "link", "del", f"{NS}h", check=False)
        run("ip", "netns", "del", NS, check=False)


class Ringlb:
    def __init__(self, backends, *flags):
        self.port, self.metrics_port = free_port(), free_port()
        argv = [RINGLB, "--listen", f"127.0.0.1:{self.port}", "--metrics-listen",
                f"127.0.0.1:{self.metrics_port}", "--workers", "2", "--health-interval", "0s"]
        for b in backends:
            argv += ["--backend", b]
        self.proc = subprocess.Popen(argv + list(flags), stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        # The listener may accept (in the kernel's backlog) before the metrics listener is up: wait
        # for that too, bounded, before the first scrape (once refused with ECONNREFUSED).
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.metrics_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        # That probe was a client too: wait until it is closed, so counts start from it.
        self.wait_for(lambda m: m.get("ringlb_connections_active", 1) == 0, 10)

    def metrics(self):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            name = key.split("{")[0]
            out[name] = out.get(name, 0.0) + float(value)
            if 'reason="' in key:
                out[name + ":" + key.split('reason="')[1].split('"')[0]] = float(value)
        return out

    def wait_for(self, predicate, seconds):
        deadline = time.time() + seconds
        m = self.metrics()
        while not predicate(m) and time.time() < deadline:
            time.sleep(0.1)
            m = self.metrics()
        return m

    def assert_nothing_left(self, test):
        m = self.wait_for(lambda m: m.get("ringlb_connections_active", 1) == 0, 10)
        for name in ("ringlb_connections_active", "ringlb_open_direct_slots", "ringlb_proxy_buffers_in_use",
                     "ringlb_backend_connections_active"):
            test.assertEqual(m.get(name), 0, name)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def stream(port, seed, up, down, timeout=60):
    """One two-way stream through ringlb; returns (ok, detail)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(b"%d %d %d\n" % (seed, up, down))
        errors = []

        def upload():
            try:
                s.sendall(pattern(seed + 1, up))
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=upload)
        t.start()
        got = bytearray()
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
        t.join()
        want = pattern(seed, down) + hashlib.sha256(pattern(seed + 1, up)).hexdigest().encode()
        if errors:
            return False, f"upload: {errors[0]}"
        if bytes(got) != want:
            return False, f"{len(got)} bytes back, {len(want)} expected, equal prefix {os.path.commonprefix([bytes(got), want]).__len__()}"
        return True, ""
    finally:
        s.close()


class NetworkFaults(unittest.TestCase):
    def tearDown(self):
        for closer in reversed(getattr(self, "closers", [])):
            closer()

    def start(self, wire=None):
        self.closers = []
        net = Net(wire)
        self.closers.append(net.close)
        return net

    def lb(self, backends, *flags):
        lb = Ringlb(backends, *flags)
        self.closers.append(lb.stop)
        return lb

    def test_delay_loss_and_reordering_keep_every_byte(self):
        net = self.start(wire=(100, 0.05, 0.25))
        backends = [net.backend(7001), net.backend(7002)]
        # Documented: a connect attempt has --connect-timeout, here 8 s: above the 200 ms handshake
        # and three lost SYNs or SYN-ACKs in a row (retransmitted at 1, 3 and 7 s). At 3 s, two
        # in a row (about 1% of connects at 5% loss each way) failed the connect, and the client,
        # whose upload ringlb had not read, saw a reset: once in a CI run. --idle-timeout 10 s is
        # above any stall.
        lb = self.lb(backends, "--connect-timeout", "8s", "--idle-timeout", "10s")
        results = [None] * 4

        def one(i):
            results[i] = stream(lb.port, 1000 + i, 1 << 20, 1 << 20, timeout=90)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for i, r in enumerate(results):
            self.assertIsNotNone(r, f"stream {i} did not finish")
            self.assertTrue(r[0], f"stream {i}: {r[1]}")
        m = lb.metrics()
        self.assertEqual(m.get("ringlb_connections_closed_total:idle_timeout", 0), 0)
        self.assertEqual(m.get("ringlb_connections_closed_total:connect_failed", 0), 0)
        lb.assert_nothing_left(self)

    def test_blackholed_backend_is_closed_by_the_idle_timeout(self):
        net = self.start()
        lb = self.lb([net.backend(7001)], "--idle-timeout", "2s")
        s = socket.create_connection(("127.0.0.1", lb.port), timeout=30)
        s.sendall(b"5 100000000 0\n")
        s.sendall(b"x" * 65536)  # the stream flows...
        lb.wait_for(lambda m: m.get("ringlb_backend_connections_active", 0) == 1, 5)
        run("nft", "add", "table", "inet", "blackhole", ns=True)
        run("nft", "add chain inet blackhole in { type filter hook input priority 0 ; policy drop ; }", ns=True)
        started = time.time()
        # ...then the backend stops answering: the client keeps sending until the buffers fill.
        s.settimeout(0.2)
        closed_after = None
        while time.time() - started < 10:
            try:
                s.send(b"y" * 65536)
            except socket.timeout:
                pass
            except OSError:
                closed_after = time.time() - started
                break
            try:
                if s.recv(1, socket.MSG_DONTWAIT) == b"":
                    closed_after = time.time() - started
                    break
            except (BlockingIOError, socket.timeout):
                pass
            except OSError:
                closed_after = time.time() - started
                break
        s.close()
        self.assertIsNotNone(closed_after, "the client was not closed within 10 s")
        self.assertGreaterEqual(closed_after, 1.5)
        self.assertLess(closed_after, 5.0)
        m = lb.wait_for(lambda m: m.get("ringlb_connections_closed_total:idle_timeout", 0) >= 1, 5)
        self.assertEqual(m.get("ringlb_connections_closed_total:idle_timeout", 0), 1)
        lb.assert_nothing_left(self)

    def test_full_syn_backlog_moves_clients_to_the_next_backend(self):
        net = self.start()
        stuck = net.backend(7001, backlog=1, mode="never-accept")
        good = net.backend(7002)
        # Fill the stuck backend's accept queue (backlog 1 holds 2 here): later SYNs are dropped.
        fillers = []
        for _ in range(2):
            fillers.append(socket.create_connection((net.ns_ip, 7001), timeout=5))
        probe = socket.socket()
        probe.settimeout(1.0)
        with self.assertRaises(OSError):
            probe.connect((net.ns_ip, 7001))  # the queue is full: this SYN gets no answer
        probe.close()
        lb = self.lb([stuck, good], "--connect-timeout", "1s", "--connect-attempts", "2")
        times = []
        for i in range(4):
            t = time.time()
            ok, detail = stream(lb.port, 50 + i, 1000, 1000, timeout=20)
            times.append(time.time() - t)
            self.assertTrue(ok, f"client {i}: {detail}")
        # Round robin sends every other client to the stuck backend first: those wait one connect
        # timeout, then are served by the other.
        slow = [t for t in times if t >= 0.9]
        self.assertGreaterEqual(len(slow), 1, times)
        self.assertTrue(all(t < 4.0 for t in times), times)
        m = lb.metrics()
        self.assertGreaterEqual(m.get("ringlb_backend_connect_failures_total", 0), len(slow))
        self.assertEqual(m.get("ringlb_connections_closed_total:connect_failed", 0), 0)
        for f in fillers:
            f.close()
        lb.assert_nothing_left(self)


class JUnitResult(unittest.TextTestResult):
    cases = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.cases.append((test.id(), None))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.cases.append((test.id(), self._exc_info_to_string(err, test)))

    def addError(self, test, err):
        super().addError(test, err)
        self.cases.append((test.id(), self._exc_info_to_string(err, test)))


def main():
    if os.geteuid() != 0:
        print("netfault_test needs root (ip netns, nft, /dev/net/tun)")
        return 1
    runner = unittest.TextTestRunner(verbosity=2, resultclass=JUnitResult)
    result = runner.run(unittest.defaultTestLoader.loadTestsFromTestCase(NetworkFaults))
    path = os.environ.get("XML_OUTPUT_FILE")
    if path:
        with open(path, "w") as f:
            f.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="netfault">\n')
            for name, failure in JUnitResult.cases:
                f.write(f'<testcase name="{xml.sax.saxutils.escape(name)}">')
                if failure:
                    f.write(f'<failure message="failed">{xml.sax.saxutils.escape(failure)}</failure>')
                f.write("</testcase>\n")
            f.write("</testsuite></testsuites>\n")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
