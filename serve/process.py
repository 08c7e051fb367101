"""``padellm serve`` in a child process on a free loopback port: for load benchmarks and tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from padellm.client import NERClient, ServerError
from padellm.errors import PadellmError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """Start with ``start()`` (returns once ``/health`` says ok), stop with ``stop()`` (SIGTERM: drains)."""

    def __init__(self, args: list[str], log_path: str | Path, host: str = "127.0.0.1"):
        self.args, self.log_path, self.host = list(args), Path(log_path), host
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 600) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "padellm_serve", *self.args, "--host", self.host, "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT)
        client = NERClient(self.url, timeout=5)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PadellmError(f"the server exited with status {self.process.returncode} before it was ready; "
                                   f"its log ({self.log_path}) ends with:\n{self.log_tail()}")
            try:
                if client.health()["status"] == "ok":
                    return self
            except ServerError:
                pass
            time.sleep(0.5)
        self.kill()
        raise PadellmError(f"the server was not ready after {ready_timeout:.0f} s; its log ends with:\n{self.log_tail()}")

    def log_tail(self, characters: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.exists() else ""

    def rss_bytes(self) -> int:
        """Resident memory of the server and its children (the vLLM engine cores)."""
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM (in-flight requests finish), then wait; the exit status (-15 after a clean uvicorn shutdown)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class PeakMemory:
    """Samples a ``ServerProcess``'s resident memory in a thread; ``peak_bytes`` is the largest seen."""

    def __init__(self, server: ServerProcess, every_s: float = 0.2):
        self.server, self.every_s, self.peak_bytes = server, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self.server.rss_bytes())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
