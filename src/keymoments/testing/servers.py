"""Helpers for tests that start a real server process on loopback: a free port, and waiting for its /health."""

from __future__ import annotations

import socket
import subprocess
import time

__all__ = ["free_port", "wait_healthy"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, base: str, seconds: float = 60.0) -> None:
    """Return once ``base``/health answers 200. Raise ``RuntimeError`` with the process's output if it exits
    first, and kill it and raise if it has not answered within ``seconds``."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = "".join(p.read().decode(errors="replace") for p in (proc.stdout, proc.stderr) if p)
            raise RuntimeError(f"the server exited: {out}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the server did not answer /health within {seconds:.0f} s")
