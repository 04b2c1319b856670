"""Starting the app as a newcomer does: the port from GRADIO_SERVER_PORT or --port, the address
printed once, the browser opened only where there is a display, the offline model loaded at
start with a message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from promptopt.ui.serve_cli import configure, env_port, has_display
from promptopt.workspace.factory import preload_model

ROOT = Path(__file__).resolve().parents[1]


def test_port_and_host_follow_gradios_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    assert env_port(None) == 7860 and env_port("8123") == 8123
    with pytest.raises(ValueError, match="not a port number"):
        env_port("eighty")
    with pytest.raises(ValueError, match="not a port number"):
        env_port("70000")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args([])
    assert args.host == "0.0.0.0" and args.port is None and not args.no_browser
    assert parser.parse_args(["--port", "9000", "--no-browser"]).no_browser


def test_the_browser_opens_only_with_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not has_display()
    monkeypatch.setenv("DISPLAY", ":0")
    assert has_display()


def test_the_offline_model_is_loaded_at_start_with_a_message() -> None:
    asked: list[str] = []
    said: list[str] = []

    class Backend:
        def preload(self, say: Any) -> None:
            say("Loading the offline model…")

    class Client:
        def backend_for(self, model: str) -> Any:
            asked.append(model)
            return Backend()

    preload_model(Client(), said.append)  # type: ignore[arg-type]
    assert asked == ["local/smollm2"]
    assert said == ["Loading the offline model…"]

    class Remote:  # a model that is not local, or unknown: nothing to load, no message
        def backend_for(self, model: str) -> Any:
            raise RuntimeError("unknown")

    preload_model(Remote(), said.append)  # type: ignore[arg-type]
    assert said == ["Loading the offline model…"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_app_serves_on_gradio_server_port_and_prints_the_address_once(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "PROMPTOPT_FAKE_LLM": "1",
        "PROMPTOPT_EMBEDDER": "fake",
        "PROMPTOPT_HOME": str(tmp_path),
        "DISPLAY": "",
        "WAYLAND_DISPLAY": "",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl+C to stop" in line:
                break
        text = "".join(lines)
        assert f"promptopt is running at http://127.0.0.1:{port}/" in text, text
        assert "opening it in your browser" not in text  # no display here
        assert "Running on local URL" not in text  # Gradio's own banner: the address once
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
            assert page.status == 200
    finally:
        proc.terminate()
        proc.wait(30)
