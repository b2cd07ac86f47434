"""Fixtures for the infrastructure tests: the parsed template and a moto server."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from infra_support import REPO_ROOT, find_tool, load_template

MOTO_START_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def template() -> dict:
    return load_template()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """A moto server on a free loopback port, for the whole session; stopped at the end."""
    moto_server = find_tool("moto_server", "MOTO_SERVER", ".venv")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="moto-server-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [moto_server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + MOTO_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto_server exited with {process.returncode}; log: {open(log.name).read()}")
            try:
                with urllib.request.urlopen(f"{endpoint}/moto-api/reset", data=b"", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"moto_server not ready after {MOTO_START_TIMEOUT_S} s; log: {open(log.name).read()}")
            time.sleep(0.1)  # poll interval, bounded by the deadline above
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
