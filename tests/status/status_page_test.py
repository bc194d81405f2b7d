"""The status page in a real browser: headless Chromium (Debian's), driven over the DevTools
protocol (python3-websocket), opens the page of a running ringlb in front of real backends (each a
process of its own) and checks that every listener, cluster and backend appears, that a backend
drained with `ringlb ctl drain` shows as draining, and that a backend killed with SIGKILL shows as
down once its health checks fail, all in the same page load: the page updates itself, never
reloads. Then the "not healthy only" view and the filter.

    status_page_test.py --ringlb PATH               the test (exit 0 when it passes)
    status_page_test.py --ringlb PATH --screenshot docs/status-page.png
                                                    the same, with traffic, then a screenshot
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import websocket  # python3-websocket (websocket-client)


def fail(message):
    print("FAIL: " + message, flush=True)
    sys.exit(1)


def wait_for(what, predicate, timeout=15.0, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    fail(f"{what}: not within {timeout:.0f} s (last: {last!r})")


class HttpBackend:
    """A real backend: Python's HTTP server in a process of its own, on a port it picks."""

    def __init__(self, directory):
        code = ("import http.server, sys\n"
                "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n"
                "print(s.server_address[1], flush=True)\n"
                "s.serve_forever()\n")
        self.proc = subprocess.Popen([sys.executable, "-u", "-c", code], cwd=directory,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.port = int(self.proc.stdout.readline())
        self.address = f"127.0.0.1:{self.port}"

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


class Ringlb:
    def __init__(self, binary, config, env):
        self.proc = subprocess.Popen([binary, "--config", config], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.log = []
        self.listen_ports = []
        self.metrics_port = None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                if "listening on" in line:
                    self.listen_ports.append(int(line.rsplit(":", 1)[1]))
                if "metrics on http://" in line:
                    self.metrics_port = int(line.split("metrics on http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(20) or self.metrics_port is None:
            fail("ringlb did not start:\n" + "".join(self.log))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Browser:
    """Headless Chromium and one page, driven over the DevTools protocol."""

    def __init__(self, profile):
        chromium = shutil.which("chromium") or fail("chromium is not installed (tools/setup.sh)")
        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--remote-debugging-port=0",
             "--remote-allow-origins=*", f"--user-data-dir={profile}", "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        browser_ws = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            if line.startswith("DevTools listening on "):
                browser_ws = line.split("DevTools listening on ", 1)[1].strip()
                break
        if not browser_ws:
            fail("chromium did not open its DevTools port")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        port = int(browser_ws.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        self.next_id = 0

    def send(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    fail(f"{method}: {message['error']}")
                return message.get("result", {})

    def eval(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            fail(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def backend_states(browser):
    """data-backend -> data-state of every backend row the page shows."""
    return browser.eval("Object.fromEntries([...document.querySelectorAll('[data-backend]')]"
                        ".map(e => [e.dataset.backend, e.dataset.state]))")


def shown(browser, attribute):
    return sorted(browser.eval(f"[...document.querySelectorAll('[data-{attribute}]')].map(e => e.dataset['{attribute}'])"))


def traffic(port, stop, held):
    """Requests through ringlb until `stop`, and a few connections held open (the charts' lines)."""
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", port))
        held.append(s)
    while not stop.is_set():
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
        except Exception:
            pass
        time.sleep(0.05)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ringlb", default=os.environ.get("RINGLB_BINARY"))
    parser.add_argument("--screenshot", help="write a screenshot of the page here (PNG)")
    args = parser.parse_args()
    if not args.ringlb:
        fail("--ringlb PATH is required")
    tmp = tempfile.mkdtemp(prefix="ringlb-page-")
    procs = []
    try:
        os.makedirs(os.path.join(tmp, "www"))
        with open(os.path.join(tmp, "www", "index.html"), "w") as f:
            f.write("ok\n")
        web = [HttpBackend(os.path.join(tmp, "www")) for _ in range(3)]
        api = [HttpBackend(os.path.join(tmp, "www")) for _ in range(2)]
        procs += web + api
        sock = os.path.join(tmp, "ctl.sock")
        config = os.path.join(tmp, "ringlb.toml")
        with open(config, "w") as f:
            f.write(f"""workers = 2
metrics-listen = "127.0.0.1:0"
control-socket = "{sock}"
health-interval = "300ms"
health-timeout = "300ms"
health-fall = 2

[cluster.web]
balance = "roundrobin"
check = "http"
check-path = "/"
backends = ["{web[0].address}", "{web[1].address},weight=2", "{web[2].address}"]

[cluster.api]
balance = "leastconn"
backends = ["{api[0].address}", "{api[1].address}"]

[[listener]]
name = "front"
address = "127.0.0.1:0"
cluster = "web"

[[listener]]
name = "api"
address = "127.0.0.1:0"
cluster = "api"
""")
        env = dict(os.environ)
        if args.screenshot:
            env["RINGLB_TEST_STATUS_TICK_MS"] = "100"  # a sample a second: charts fill in a minute
        lb = Ringlb(args.ringlb, config, env)
        procs.append(lb)
        stop = threading.Event()
        held = []
        if args.screenshot:
            for port in lb.listen_ports:
                threading.Thread(target=traffic, args=(port, stop, held), daemon=True).start()

        browser = Browser(os.path.join(tmp, "profile"))
        procs.append(browser)
        browser.send("Page.enable")
        browser.send("Page.navigate", url=f"http://127.0.0.1:{lb.metrics_port}/")
        wait_for("the page's first refresh", lambda: int(browser.eval("(document.body && document.body.dataset.refreshes) || 0")) >= 1)

        # Every listener, cluster and backend of the config.
        want_backends = {f"web/{b.address}" for b in web} | {f"api/{b.address}" for b in api}
        wait_for("every backend up", lambda: backend_states(browser) == {b: "up" for b in want_backends})
        if shown(browser, "listener") != ["api", "front"]:
            fail(f"listeners shown: {shown(browser, 'listener')}")
        if shown(browser, "cluster") != ["api", "web"]:
            fail(f"clusters shown: {shown(browser, 'cluster')}")
        print("ok: every listener, cluster and backend is on the page", flush=True)

        # From here on the page must update itself: a reload would lose this mark.
        browser.eval("window.__sameLoad = 'yes'")
        origin = browser.eval("performance.timeOrigin")
        refreshes = int(browser.eval("document.body.dataset.refreshes"))

        drained = web[0].address
        ctl = subprocess.run([args.ringlb, "ctl", sock, "drain", "web", drained], capture_output=True, text=True)
        if ctl.returncode != 0:
            fail(f"ctl drain: {ctl.stderr}")
        wait_for("the drained backend shown as draining",
                 lambda: backend_states(browser).get(f"web/{drained}") == "draining")
        badge = browser.eval(f"document.querySelector('[data-backend=\"web/{drained}\"] .state').textContent")
        if badge != "draining":
            fail(f"the drained backend's badge says {badge!r}")
        print("ok: ctl drain shows as draining", flush=True)

        dead = web[1]
        dead.kill()
        wait_for("the killed backend shown as down", lambda: backend_states(browser).get(f"web/{dead.address}") == "down")
        reason = browser.eval(f"document.querySelector('[data-backend=\"web/{dead.address}\"] td.reason').textContent")
        if not reason:
            fail("the down backend shows no reason")
        if browser.eval("window.__sameLoad") != "yes" or browser.eval("performance.timeOrigin") != origin:
            fail("the page was reloaded")
        if int(browser.eval("document.body.dataset.refreshes")) <= refreshes:
            fail("the page did not refresh")
        print(f"ok: the killed backend shows as down ({reason}), in the same page load", flush=True)

        # "not healthy only": the drained and the dead backend, nothing else; then the filter.
        browser.eval("document.getElementById('unhealthy').click()")
        unhealthy = sorted(backend_states(browser))
        if unhealthy != sorted([f"web/{drained}", f"web/{dead.address}"]):
            fail(f"not healthy only shows {unhealthy}")
        browser.eval("document.getElementById('unhealthy').click()")
        browser.eval("const f = document.getElementById('filter'); f.value = 'api';"
                     "f.dispatchEvent(new Event('input'))")
        if shown(browser, "cluster") != ["api"] or shown(browser, "listener") != ["api"]:
            fail(f"the filter 'api' shows clusters {shown(browser, 'cluster')}, listeners {shown(browser, 'listener')}")
        browser.eval("const g = document.getElementById('filter'); g.value = ''; g.dispatchEvent(new Event('input'))")
        print("ok: not healthy only, and the filter", flush=True)

        if args.screenshot:
            # A minute of traffic (and the dead backend's red) in the charts, then the picture
            # while the traffic still runs (its rates are shown).
            time.sleep(60)
            height = browser.eval("document.documentElement.scrollHeight")
            browser.send("Emulation.setDeviceMetricsOverride", width=1400, height=int(height) + 20,
                         deviceScaleFactor=1, mobile=False)
            time.sleep(0.5)
            import base64
            shot = browser.send("Page.captureScreenshot", format="png")
            with open(args.screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            print(f"screenshot: {args.screenshot}", flush=True)
            stop.set()
        print("status page: passed", flush=True)
    finally:
        for p in reversed(procs):
            try:
                p.close() if isinstance(p, Browser) else p.stop() if isinstance(p, Ringlb) else p.kill()
            except Exception:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
