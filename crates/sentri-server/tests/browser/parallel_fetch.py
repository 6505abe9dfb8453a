#!/usr/bin/env python3
"""Drive headless Chromium against a running sentri server (issue 14 item 4, F-24).

Opens a page of the server's own origin, then, in that page: registers an
account, logs in (cookie transport sets the access and refresh cookies),
waits until the access token has expired, and sends four parallel
`fetch`es to a protected route. Prints one JSON line:
`{"register": 201, "login": 200, "statuses": [200, 200, 200, 200], "after": 200}`.

Chromium is controlled through the DevTools protocol over a pipe
(`--remote-debugging-pipe`: file descriptors 3 and 4, NUL-separated JSON),
so no WebSocket library or npm package is needed.

usage: parallel_fetch.py CHROMIUM BASE_URL WAIT_SECONDS
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

SCRIPT = """
(async () => {
  const json = (body) => ({
    method: 'POST',
    headers: {'content-type': 'application/json'},
    body: JSON.stringify(body),
  });
  const creds = {identifier: 'browser-' + Date.now() + '@example.com',
                 password: 'correct horse battery staple'};
  const register = (await fetch('/auth/register', json(creds))).status;
  const login = (await fetch('/auth/login', json(creds))).status;
  await new Promise((done) => setTimeout(done, WAIT_MS));
  const statuses = await Promise.all([0, 1, 2, 3].map(() =>
    fetch('/auth/me', {cache: 'no-store'}).then((r) => r.status)));
  const after = (await fetch('/auth/me', {cache: 'no-store'})).status;
  return JSON.stringify({register, login, statuses, after});
})()
"""


class Pipe:
    """The DevTools protocol over Chromium's fds 3 (commands) and 4 (replies)."""

    def __init__(self, chromium, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def wire():
            # Via fresh copies, so that neither end is overwritten first.
            read_end, write_end = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(read_end, 3, inheritable=True)
            os.dup2(write_end, 4, inheritable=True)

        self.proc = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            preexec_fn=wire,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE if os.environ.get("SENTRI_BROWSER_DEBUG") else subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0

    def call(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_chrome, 65536)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main():
    chromium, base, wait = sys.argv[1], sys.argv[2].rstrip("/"), float(sys.argv[3])
    profile = tempfile.mkdtemp(prefix="sentri-chromium-")
    browser = Pipe(chromium, profile)
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        browser.call("Page.enable", session=session)
        browser.call("Page.navigate", {"url": base + "/healthz"}, session=session)
        # Wait until the page is of the server's origin.
        for _ in range(600):
            origin = browser.call(
                "Runtime.evaluate",
                {"expression": "location.origin", "returnByValue": True},
                session=session,
            )["result"].get("value")
            if origin == base:
                break
            time.sleep(0.05)
        script = SCRIPT.replace("WAIT_MS", str(int(wait * 1000)))
        result = browser.call(
            "Runtime.evaluate",
            {"expression": script, "awaitPromise": True, "returnByValue": True},
            session=session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        print(result["result"]["value"])
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
