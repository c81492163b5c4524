"""Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe):
no WebDriver and no websocket library, just null-delimited JSON on two file descriptors."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _high(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium with one page; ``evaluate`` runs JavaScript in it and returns the
    (awaited) value."""

    def __init__(self, binary: str, timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        self._profile = tempfile.mkdtemp(prefix="latentcast-chromium-")
        # Above fd 9 first, so that moving them onto 3 and 4 cannot overwrite one another.
        to_child_r, self._to_child = (_high(fd) for fd in os.pipe())
        self._from_child, from_child_w = (_high(fd) for fd in os.pipe())
        # Chromium reads commands on fd 3 and writes answers on fd 4. bash moves the pipes there
        # (dash takes no fd above 9), not a preexec_fn: Python's docs call that unsafe in a
        # process with threads, and ours run gRPC's and torch's.
        moves = f"3<&{to_child_r} 4>&{from_child_w} {to_child_r}<&- {from_child_w}>&-"
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$0" "$@" {moves}', binary, "--headless=new", "--no-sandbox",
             "--remote-debugging-pipe", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", "--mute-audio", "--autoplay-policy=no-user-gesture-required",
             f"--user-data-dir={self._profile}", "about:blank"],
            pass_fds=(to_child_r, from_child_w), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # Chromium makes its own scratch directories under TMPDIR and leaves them behind;
            # inside the profile they go when close() removes it.
            env={**os.environ, "TMPDIR": self._profile})
        os.close(to_child_r)
        os.close(from_child_w)
        self._next_id = 0
        self._buffer = b""
        self.session = None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Runtime.enable")
        self.send("Page.enable")
        self.console: list[str] = []

    def send(self, method: str, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        try:
            os.write(self._to_child, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            self.proc.wait(timeout=10)
            raise RuntimeError(f"Chromium exited ({self.proc.returncode}) before {method}: "
                               f"{self.proc.stderr.read().decode()[-500:]}") from None
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read(deadline)
            if reply.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                             for a in reply["params"].get("args", [])))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            data = os.read(self._from_child, 1 << 20)
            if not data:
                raise RuntimeError(f"Chromium exited: {self.proc.stderr.read().decode()[-300:]}")
            self._buffer += data
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def evaluate(self, expression: str):
        """The value of ``expression`` (awaited if it is a promise); RuntimeError on a JS exception."""
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 60.0):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = self.evaluate(expression)
                if value:
                    return value
            except RuntimeError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never made {expression!r} true")
            time.sleep(0.1)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        try:
            os.close(self._to_child)
        except OSError:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._from_child)
        shutil.rmtree(self._profile, ignore_errors=True)


_CANVAS_PIXELS = """(() => {
  const c = document.getElementById('screen');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let s = '';
  for (let i = 0; i < d.length; i += 4) s += String.fromCharCode(d[i], d[i + 1], d[i + 2]);
  return btoa(s);
})()"""


def canvas_pixels(browser: Browser, height: int, width: int):
    """What the player page's canvas shows now, as uint8 (height, width, 3)."""
    import numpy as np

    return np.frombuffer(base64.b64decode(browser.evaluate(_CANVAS_PIXELS)), np.uint8).reshape(height, width, 3)
