"""Checks Warren's management web page in headless Chromium.

Creates a queue holding a known number of messages through the management
API, opens the page at `/` in headless Chromium, logs in through its form as a
user would, waits for the page to show the queue, then compares the figures it
shows (the queue's ready and unacked counts, the overview totals) with what the
API returns, saves a screenshot and deletes the queue. The browser is driven
over the Chrome DevTools Protocol with the small WebSocket client below, so
only the standard library is needed.

Environment: MANAGEMENT_URL (http://user:password@host:port; without it, port
15672 on AMQP_URL's host with AMQP_URL's credentials), UI_SCREENSHOT_DIR
(where the PNG goes; a new temporary directory otherwise), CHROMIUM (the
browser binary, `chromium` by default), UI_TIMEOUT (overall limit in seconds,
90 by default).

Exit status: 0 when every figure matches (or the page is not Warren's, which
is reported as a skip), 1 on a mismatch or any failure.
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

MESSAGES = 7  # published to the test queue; any count that is not 0 works
DEADLINE = time.monotonic() + float(os.environ.get("UI_TIMEOUT", "90"))


class Failure(Exception):
    pass


def remaining(cap=None):
    left = DEADLINE - time.monotonic()
    if left <= 0:
        raise Failure("out of time (UI_TIMEOUT)")
    return left if cap is None else min(left, cap)


def poll(what, probe, interval=0.2, limit=30):
    """Calls probe() until it returns something truthy, for at most `limit` s."""
    until = time.monotonic() + remaining(limit)
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= until:
            raise Failure("timed out waiting for " + what)
        time.sleep(interval)


# --- the management API ---------------------------------------------------


def management_endpoint():
    url = os.environ.get("MANAGEMENT_URL")
    if not url:
        amqp = urllib.parse.urlsplit(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1"))
        netloc = "%s:%s@%s:15672" % (amqp.username or "guest", amqp.password or "guest", amqp.hostname)
        url = "http://" + netloc
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.unquote(parts.username or "guest")
    password = urllib.parse.unquote(parts.password or "guest")
    host = parts.hostname
    if ":" in host:
        host = "[" + host + "]"
    base = "%s://%s:%d" % (parts.scheme or "http", host, parts.port or 15672)
    return base, user, password


class Api:
    def __init__(self, base, user, password):
        self.base = base
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.headers = {"Authorization": "Basic " + token}

    def request(self, method, path, body=None, timeout=None):
        """`timeout` (seconds) replaces the overall deadline, for cleaning up."""
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout or remaining(10)) as response:
                text = response.read()
        except urllib.error.HTTPError as e:
            raise Failure("%s %s: HTTP %d %s" % (method, path, e.code, e.read()[:200])) from None
        return json.loads(text) if text.strip() else None


# --- a minimal WebSocket client (RFC 6455), enough for DevTools -------------


class WebSocket:
    def __init__(self, url):
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=remaining(10))
        key = base64.b64encode(os.urandom(16)).decode()
        path = parts.path + ("?" + parts.query if parts.query else "")
        self.sock.sendall((
            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (path, parts.hostname, parts.port, key)).encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv_some()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0] + " ":
            raise Failure("DevTools refused the WebSocket: " + lines[0])
        expected = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        accept = [l.split(":", 1)[1].strip() for l in lines[1:] if l.lower().startswith("sec-websocket-accept:")]
        if accept != [expected]:
            raise Failure("bad Sec-WebSocket-Accept from DevTools")

    def _recv_some(self):
        self.sock.settimeout(remaining(30))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise Failure("DevTools did not answer in time") from None
        if not chunk:
            raise Failure("DevTools closed the connection")
        return chunk

    def _read(self, n):
        while len(self.buffer) < n:
            self.buffer += self._recv_some()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, opcode, payload):
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)  # clients must mask every frame
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def receive(self):
        """Returns the next text message, answering pings on the way."""
        message = b""
        while True:
            first, second = self._read(2)
            opcode, n = first & 0x0F, second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                raise Failure("DevTools closed the WebSocket")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                message += payload
                if first & 0x80:
                    return message.decode()

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class DevTools:
    def __init__(self, ws_url):
        self.ws = WebSocket(ws_url)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:  # events arrive in between; only the reply matters here
            reply = json.loads(self.ws.receive())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise Failure("%s: %s" % (method, reply["error"]))
                return reply["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise Failure("page script failed: %s" % details.get("exception", {}).get("description", details))
        return result["result"].get("value")


def start_browser(profile):
    binary = os.environ.get("CHROMIUM", "chromium")
    args = [binary, "--headless", "--disable-gpu", "--remote-debugging-port=0",
            "--user-data-dir=" + profile, "--no-first-run", "--no-default-browser-check",
            "--window-size=1280,1000", "about:blank"]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
    log = open(os.path.join(profile, "browser.log"), "wb")
    # Its own session, so that its helper processes are stopped with it.
    browser = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                               start_new_session=True)
    return browser


def stop_browser(browser):
    if browser.poll() is None:
        browser.terminate()
        try:
            browser.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(browser.pid, signal.SIGKILL)  # leftovers of the group it leads
    except ProcessLookupError:
        pass
    browser.wait()


# Reads what the page shows: the status line, the overview totals by label and
# the queues table, each row as {column title: text}.
READ_PAGE = r"""(() => {
  if (!document.getElementById("queues")) return null;  // not loaded yet
  const overview = {};
  for (const span of document.querySelectorAll("#overview span")) {
    const m = span.textContent.match(/^(.*): (.*)$/);
    if (m) overview[m[1]] = m[2];
  }
  const table = document.getElementById("queues");
  const titles = [...table.querySelectorAll("thead th")].map(th => th.textContent);
  const queues = [...table.querySelectorAll("tbody tr")].map(
    tr => Object.fromEntries([...tr.cells].map((td, i) => [titles[i] || "", td.textContent])));
  return {
    status: document.getElementById("status").textContent,
    error: document.getElementById("error").textContent,
    login: !document.getElementById("login").hidden,
    main: !document.getElementById("main").hidden,
    overview, queues,
  };
})()"""


def queue_row(page, name):
    rows = [q for q in page["queues"] if q.get("name") == name and q.get("vhost") == "/"]
    return rows[0] if len(rows) == 1 else None


def expected_figures(api, path):
    overview = api.request("GET", "/api/overview")
    queue = api.request("GET", path)
    totals = overview["object_totals"]
    return {
        "overview": {
            "connections": str(totals["connections"]),
            "channels": str(totals["channels"]),
            "queues": str(totals["queues"]),
            "consumers": str(totals["consumers"]),
            "messages": str(overview["queue_totals"]["messages"]),
        },
        "queue": {
            "ready": str(queue["messages_ready"]),
            "unacked": str(queue["messages_unacknowledged"]),
            "messages": queue["messages"],
        },
    }


def shown_figures(page, name):
    row = queue_row(page, name) or {}
    shown = {
        "overview": {k: page["overview"].get(k) for k in
                     ("connections", "channels", "queues", "consumers", "messages")},
        "queue": {"ready": row.get("ready"), "unacked": row.get("unacked")},
    }
    try:
        shown["queue"]["messages"] = int(row["ready"]) + int(row["unacked"])
    except (KeyError, ValueError):
        shown["queue"]["messages"] = None
    return shown


def run(api, base, user, password, shots):
    # Only Warren's page can be checked; RabbitMQ's management UI is another page.
    with urllib.request.urlopen(base + "/", timeout=remaining(10)) as response:
        front = response.read().decode("utf-8", "replace")
    if "<title>Warren</title>" not in front:
        print("SKIP: the page at %s/ is not Warren's management page" % base)
        return 0

    name = "ui-test-%d-%s" % (os.getpid(), os.urandom(3).hex())
    path = "/api/queues/%2F/" + urllib.parse.quote(name, safe="")
    api.request("PUT", path, {"durable": False, "auto_delete": False, "arguments": {}})
    try:
        for i in range(MESSAGES):
            routed = api.request("POST", "/api/exchanges/%2F/amq.default/publish", {
                "properties": {}, "routing_key": name,
                "payload": "message %d" % i, "payload_encoding": "string"})
            if not routed or routed.get("routed") is not True:
                raise Failure("publish to %s was not routed: %r" % (name, routed))
        poll("the API to count %d messages in %s" % (MESSAGES, name),
             lambda: api.request("GET", path)["messages"] == MESSAGES)
        print("queue %s holds %d messages" % (name, MESSAGES))
        return check_page(api, base, user, password, shots, name, path)
    finally:
        try:
            api.request("DELETE", path, timeout=10)  # even when out of time
            print("deleted queue %s" % name)
        except Exception as e:  # the check's own result matters more
            print("could not delete queue %s: %s" % (name, e), file=sys.stderr)


def check_page(api, base, user, password, shots, name, path):
    profile = tempfile.mkdtemp(prefix="warren-ui-profile-")
    browser = start_browser(profile)
    devtools = None
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")

        def debug_port():
            if browser.poll() is not None:
                raise Failure("chromium exited with status %d" % browser.returncode)
            try:
                with open(port_file) as f:
                    return int(f.readline())
            except (OSError, ValueError):
                return None

        port = poll("chromium's DevTools port", debug_port)
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=remaining(10)) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        if not pages:
            raise Failure("chromium has no page to drive")
        devtools = DevTools(pages[0]["webSocketDebuggerUrl"])

        # The page's own address carries no credentials: they go into its login form.
        devtools.call("Page.navigate", url=base + "/")
        poll("the login form", lambda: (devtools.evaluate(READ_PAGE) or {}).get("login"))
        devtools.evaluate(
            "(() => { document.getElementById('user').value = %s;"
            " document.getElementById('password').value = %s;"
            " document.getElementById('login').requestSubmit(); })()"
            % (json.dumps(user), json.dumps(password)))

        def rendered():
            page = devtools.evaluate(READ_PAGE)
            if not page:
                return None
            if page["login"] and page["error"]:
                raise Failure("the page refused the login: " + page["error"])
            return page if page["main"] and page["status"] and queue_row(page, name) else None

        page = poll("the page to show queue " + name, rendered)
        print("page rendered (%s)" % page["status"].strip())

        # The broker may change between the page's fetch and ours (another
        # client's connection, say), so compare only when the API gave the
        # same figures before and after the page refreshed; a few attempts.
        for attempt in range(5):
            before = expected_figures(api, path)
            page = devtools.evaluate("refresh().then(() => " + READ_PAGE + ")")
            if not page:
                raise Failure("the page went away")
            after = expected_figures(api, path)
            if before == after:
                break
            print("broker changed during attempt %d; again" % (attempt + 1))
        else:
            raise Failure("the broker's figures kept changing; nothing to compare with")
        shown = shown_figures(page, name)

        screenshot = devtools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        png = base64.b64decode(screenshot["data"])
        if not png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise Failure("the screenshot is not a PNG")
        shot = os.path.join(shots, "warren-ui-%s.png" % name)
        with open(shot, "wb") as f:
            f.write(png)
        print("screenshot: %s" % shot)

        mismatches = []
        for section in ("overview", "queue"):
            for key, want in after[section].items():
                got = shown[section][key]
                status = "ok" if got == want else "MISMATCH"
                print("  %-8s %-12s page %-6s api %-6s %s" % (section, key, got, want, status))
                if got != want:
                    mismatches.append("%s %s" % (section, key))
        if after["queue"]["messages"] != MESSAGES:
            mismatches.append("queue depth is %r, %d were published"
                              % (after["queue"]["messages"], MESSAGES))
        if mismatches:
            print("FAIL: the page disagrees with the API: " + ", ".join(mismatches), file=sys.stderr)
            return 1
        print("PASS: the page shows the API's figures")
        return 0
    except Failure:
        try:
            with open(os.path.join(profile, "browser.log"), "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            # Without a system bus Chromium logs D-Bus errors; they explain nothing here.
            tail = "\n".join([l for l in lines if "dbus" not in l][-20:])
            if tail.strip():
                print("--- end of chromium's log ---\n" + tail, file=sys.stderr)
        except OSError:
            pass
        raise
    finally:
        if devtools:
            devtools.ws.close()
        stop_browser(browser)
        shutil.rmtree(profile, ignore_errors=True)


def main():
    # A termination (for instance by `timeout`) still stops the browser.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base, user, password = management_endpoint()
    shots = os.environ.get("UI_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="warren-ui-")
    os.makedirs(shots, exist_ok=True)
    try:
        return run(Api(base, user, password), base, user, password, shots)
    except (Failure, OSError, KeyError, ValueError) as e:
        print("FAIL: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
