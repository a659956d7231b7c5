"""Fixtures every tier may use: a real headless Debian chromium, driven over the DevTools protocol.

The protocol runs over `--remote-debugging-pipe` (JSON messages ended by NUL on fds 3 and 4), so no
websocket library is needed. install.sh installs chromium.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


class Chromium:
    """One chromium process with one page; `open(url)` then `evaluate(js)`."""

    def __init__(self, profile: Path) -> None:
        binary = shutil.which("chromium")
        if binary is None:
            raise RuntimeError("chromium is not installed: run install.sh (it installs Debian's chromium)")
        to_child, from_us = os.pipe()  # we write commands, chromium reads them on fd 3
        to_us, from_child = os.pipe()  # chromium writes answers on fd 4
        # Out of the way of fds 3 and 4, which the child's dup2 below takes.
        to_child, from_child = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child))

        def child_fds() -> None:
            os.dup2(to_child, 3)
            os.dup2(from_child, 4)

        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            preexec_fn=child_fds, pass_fds=(3, 4),  # noqa: PLW1509  only dup2 runs in the child
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for fd in (to_child, from_child):
            os.close(fd)
        self._write, self._read = from_us, to_us
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def command(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._next_id:
                    if "error" in answer:
                        raise RuntimeError(f"chromium: {method}: {answer['error']}")
                    return answer["result"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"chromium did not answer {method} within {timeout:.0f} s")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium exited (code {self.proc.poll()}) during {method}")
            self._buffer += chunk

    def open(self, url: str, timeout: float = 60.0) -> None:
        """Load `url` in a new page and wait until it has loaded (createTarget returns before)."""
        target = self.command("Target.createTarget", {"url": url})["targetId"]
        self.session = self.command("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.wait_for(f"location.href === {json.dumps(url)} && document.readyState === 'complete'", timeout)

    def evaluate(self, expression: str):
        result = self.command("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0):
        """Evaluate until the value is truthy; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"in the page, {expression} stayed falsy for {timeout:.0f} s")
            time.sleep(0.2)

    def close(self) -> None:
        try:
            self.session = None
            self.command("Browser.close", timeout=10)
            self.proc.wait(timeout=10)
        except (RuntimeError, TimeoutError, OSError, subprocess.TimeoutExpired):
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: chromium and its helpers
                self.proc.wait()
        finally:
            for fd in (self._write, self._read):
                os.close(fd)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    browser = Chromium(tmp_path / "chromium-profile")
    try:
        yield browser
    finally:
        browser.close()
