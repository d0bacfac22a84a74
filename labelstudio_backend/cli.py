"""``gfn-autolabel serve-labelstudio``: run the Label Studio ML backend.

Serves with gunicorn + uvicorn workers (default) or plain uvicorn. Settings come from the
environment (see ``docs/LABELSTUDIO.md``); the options below override them. The API key is read
from ``LABEL_STUDIO_API_KEY`` only, never from the command line (which ``ps`` shows).

Closed by default: on an address other than loopback (127.0.0.1, ::1, localhost) the backend
refuses to start unless BASIC_AUTH_USER and BASIC_AUTH_PASS are set, or --allow-unauthenticated
(ALLOW_UNAUTHENTICATED=true) is given, which is logged as a warning.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

APP_FACTORY = "labelstudio_backend.app:create_app_from_env"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve-labelstudio",
        help="run the Label Studio ML backend (predictions, interactive prompts, training from annotations)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--host",
        default=os.environ.get("HOST", "127.0.0.1"),
        help="address to listen on (default 127.0.0.1; 0.0.0.0 in Docker)",
    )
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "9090")), help="port (default 9090)")
    p.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WORKERS", "1")),
        help="worker processes (default 1; env WORKERS)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="request threads per worker for predictions (env THREADS; default 40)"
    )
    p.add_argument(
        "--server",
        choices=("gunicorn", "uvicorn"),
        default=os.environ.get("SERVER", "gunicorn"),
        help="gunicorn with uvicorn workers (default) or uvicorn alone",
    )
    p.add_argument(
        "--timeout",
        type=int,
        default=int(os.environ.get("WORKER_TIMEOUT", "300")),
        help="gunicorn worker timeout in seconds (default 300)",
    )
    p.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        default=None,
        help="serve on a non-loopback address without basic auth (env ALLOW_UNAUTHENTICATED=true); "
        "logged as a warning. Without it such an address needs BASIC_AUTH_USER/BASIC_AUTH_PASS",
    )
    p.add_argument("--model-dir", default=None, help="per-project models and masks (env MODEL_DIR)")
    p.add_argument("--label-studio-url", default=None, help="Label Studio base URL (env LABEL_STUDIO_URL)")
    p.add_argument(
        "--allowed-hosts",
        default=None,
        help="comma-separated extra image hosts (env ALLOWED_HOSTS); '*.example.com' for sub-domains",
    )
    p.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "info"),
        choices=("critical", "error", "warning", "info", "debug"),
    )
    return p


def default_threads(workers: int) -> int:
    """Model threads per worker when ``TORCH_THREADS`` is unset: the cores this process may use divided
    among the ``workers`` (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def run(args: argparse.Namespace) -> int:
    from core.cli import CLIError
    from labelstudio_backend.auth import check_listen_address
    from labelstudio_backend.settings import BackendSettings

    for var, value in (
        ("MODEL_DIR", args.model_dir),
        ("LABEL_STUDIO_URL", args.label_studio_url),
        ("ALLOWED_HOSTS", args.allowed_hosts),
        ("THREADS", None if args.threads is None else str(args.threads)),
        ("LOG_LEVEL", args.log_level),
        ("ALLOW_UNAUTHENTICATED", "true" if args.allow_unauthenticated else None),
    ):
        if value is not None:
            os.environ[var] = value  # workers read their settings from the environment
    if args.workers < 1:
        raise CLIError(f"--workers must be >= 1, got {args.workers}")
    if not os.environ.get("TORCH_THREADS"):
        # workers x threads = cores: more threads than cores only make the workers' threads wait for each other
        os.environ["TORCH_THREADS"] = str(default_threads(args.workers))
    try:
        settings = BackendSettings.from_env()
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    try:
        check_listen_address(args.host, settings)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    log.warning(
        "serving the Label Studio ML backend on http://%s:%d (%d %s worker(s) x %s model thread(s), models in %s, "
        "Label Studio %s, API key %s, basic auth %s)",
        args.host,
        args.port,
        args.workers,
        args.server,
        settings.torch_threads,
        settings.model_dir,
        settings.label_studio_url or "unset",
        "set" if settings.api_key else "unset",
        "on" if settings.basic_auth else "OFF",
    )
    if args.server == "uvicorn":
        import uvicorn

        uvicorn.run(
            APP_FACTORY, factory=True, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level
        )
        return 0
    _serve_gunicorn(args)
    return 0


def _serve_gunicorn(args: argparse.Namespace) -> None:
    from gunicorn.app.base import BaseApplication

    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": args.workers,
        "worker_class": "uvicorn.workers.UvicornWorker",
        "timeout": args.timeout,
        "graceful_timeout": 30,
        "keepalive": 5,
        "loglevel": args.log_level,
        "accesslog": "-",
        "errorlog": "-",
    }

    class Server(BaseApplication):
        def load_config(self) -> None:
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1: no shared ~/.gunicorn socket
                options["control_socket_disable"] = True
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            from labelstudio_backend.app import create_app_from_env

            return create_app_from_env()

    Server().run()
