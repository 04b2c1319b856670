"""``promptopt serve`` and ``python app.py``: launch the web app.

Real parts by default: the SQLite store in PROMPTOPT_HOME, the offline default model
(``local/smollm2``, or PROMPTOPT_MODEL) and the MiniLM embedder. For tests, demos and benchmarks,
PROMPTOPT_FAKE_LLM=1 answers with a deterministic fake model and PROMPTOPT_EMBEDDER=fake uses
the hashed fake embedder.
"""

from __future__ import annotations

import argparse
import os
import sys

from promptopt.workspace import Parts, make_parts, make_workspace
from promptopt.workspace.factory import preload_model

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
AUTH_ENV = "PROMPTOPT_AUTH"


def parse_auth(values: list[str] | None, env: str | None = None) -> list[tuple[str, str]]:
    """USER:PASS pairs from --auth (repeatable) or PROMPTOPT_AUTH ("u1:p1,u2:p2")."""
    items = list(values or [])
    if not items and env:
        items = [item for item in env.split(",") if item.strip()]
    pairs: list[tuple[str, str]] = []
    for item in items:
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError(f"--auth expects USER:PASS, got {item.strip()!r}.")
        pairs.append((user, password))
    return pairs


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def build_parts(db_path: str | None = None) -> Parts:
    """Store, client and embedder as the environment asks (fakes for tests and benchmarks)."""
    embedder = os.environ.get("PROMPTOPT_EMBEDDER", "default")
    if embedder == "default":
        print("Loading the embedding model (a few seconds the first time)…", flush=True)
    return make_parts(db_path, fake_llm=env_flag("PROMPTOPT_FAKE_LLM"), embedder=embedder)


def env_port(value: str | None) -> int:
    """``GRADIO_SERVER_PORT``, as Gradio users expect it to work, or 7860."""
    if not value or not value.strip():
        return 7860
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise ValueError(
            f"GRADIO_SERVER_PORT={value!r} is not a port number; set it to e.g. 7860, or use "
            "--port (make run PORT=7860)."
        )
    return port


def has_display() -> bool:
    """Whether a browser window can open here (a desktop, not a server or a container)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        help="address to bind (default: GRADIO_SERVER_NAME, else 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="port (default: GRADIO_SERVER_PORT, else 7860)",
    )
    parser.add_argument(
        "--no-browser",
        action="store_true",
        help="do not open the page in the default browser (it opens when there is a display)",
    )
    parser.add_argument(
        "--auth",
        action="append",
        metavar="USER:PASS",
        help=f"require a login (repeatable); the user name is the annotator. Or set {AUTH_ENV}.",
    )
    parser.add_argument(
        "--annotator", default="you", help="annotator name when there is no login (default: you)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the engines (default 0)")


def host_warning(host: str, auth: list[tuple[str, str]]) -> str | None:
    if host in LOCAL_HOSTS or auth:
        return None
    return (
        f"WARNING: serving on {host} without a login: anyone who can reach this address can "
        f"read and change every project. Add --auth USER:PASS (or set {AUTH_ENV})."
    )


def run(args: argparse.Namespace) -> int:
    from promptopt.ui.app import build_app, launch_kwargs
    from promptopt.ui.login import auth_launch_kwargs

    auth = parse_auth(getattr(args, "auth", None), os.environ.get(AUTH_ENV))
    port = args.port if args.port is not None else env_port(os.environ.get("GRADIO_SERVER_PORT"))
    warning = host_warning(args.host, auth)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    parts = build_parts()
    preload_model(parts.client, lambda line: print(line, flush=True))
    demo = build_app(
        make_workspace(parts, seed=args.seed),
        annotator_default=args.annotator,
        auth_enabled=bool(auth),
    )
    open_browser = not getattr(args, "no_browser", False) and has_display()
    demo.launch(
        server_name=args.host,
        server_port=port,
        share=False,
        show_error=True,
        inbrowser=open_browser,
        quiet=True,  # Gradio's own banner is replaced by the one line below
        prevent_thread_lock=True,
        **launch_kwargs(),
        **auth_launch_kwargs(auth),  # failed logins slowed per user and per address
    )
    url = demo.local_url or f"http://{args.host}:{port}/"
    opened = " (opening it in your browser)" if open_browser else ""
    print(f"\npromptopt is running at {url}{opened}\nPress Ctrl+C to stop.\n", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        demo.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description="Start the promptopt web app.")
    configure(parser)
    return run(parser.parse_args(argv))
