"""``prodcat classify``, ``feedback``, ``clicks`` and ``serve``: the long-running processes.

Both run until SIGTERM/SIGINT, which drains (:func:`workers.process.signals.serve`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workers.cli.common import ConnectionFlags, Subparsers, add_service_flags, setting_help
from workers.core.settings import Settings

__all__ = ["register"]


def _classify(args: argparse.Namespace, settings: Settings) -> int:
    from workers.classify.factory import open_worker
    from workers.process.signals import serve

    classify: dict[str, Any] = {}
    if args.group_id:
        classify["group_id"] = args.group_id
    if args.exactly_once:
        classify["exactly_once"] = True
    if classify:
        settings = settings.with_overrides(classify=classify)
    serve(open_worker(settings, instance=args.instance))
    return 0


def _feedback(args: argparse.Namespace, settings: Settings) -> int:
    from workers.feedback.app import FeedbackApp
    from workers.process.signals import serve

    serve(FeedbackApp(settings, instance=args.instance))
    return 0


def _clicks(args: argparse.Namespace, settings: Settings) -> int:
    from workers.clicks.app import ClicksApp
    from workers.process.signals import serve

    serve(ClicksApp(settings, instance=args.instance))
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from workers.process.signals import serve
    from workers.serving.app import ServeApp

    changes: dict[str, Any] = {}
    for flag in ("host", "port", "query_bundle", "batch_wait_ms"):
        value = getattr(args, flag)
        if value is not None:
            changes[flag] = value
    if args.no_batching:
        changes["batching"] = False
    if changes:
        settings = settings.with_overrides(serve=changes)
    serve(ServeApp(settings))
    return 0


def register(sub: Subparsers, common: ConnectionFlags) -> None:
    p = sub.add_parser("classify", help="run a classify worker")
    common(p, kafka=True, redis=True)
    p.add_argument(
        "--bundle",
        type=Path,
        help=setting_help(
            "bundle directory or archive to serve (without it: the live model of "
            "PRODCAT_MODEL_STORE)",
            "model",
            "bundle",
        ),
    )
    p.add_argument("--group-id", help=setting_help("consumer group", "classify", "group_id"))
    p.add_argument(
        "--exactly-once",
        action="store_true",
        default=None,
        help=setting_help("transactional outputs and offsets", "classify", "exactly_once"),
    )
    add_service_flags(
        p,
        "this worker's stable name (default: host name); in exactly-once mode it makes the "
        "transactional.id, so give each worker its own",
    )
    p.set_defaults(handler=_classify)

    p = sub.add_parser("feedback", help="run the feedback app (overrides, labels, quality)")
    common(p, kafka=True, redis=True)
    p.add_argument("--bundle", type=Path, help="bundle whose taxonomy checks categories")
    add_service_flags(p, "this app instance's name (default: host name)")
    p.set_defaults(handler=_feedback)

    p = sub.add_parser("clicks", help="run the clicks app (query labels from search clicks)")
    common(p, kafka=True, redis=False)
    add_service_flags(p, "this app instance's name (default: host name)")
    p.set_defaults(handler=_clicks)

    p = sub.add_parser("serve", help="run the HTTP API: products, search queries, taxonomy, OIP v2")
    common(p, kafka=True, redis=True)
    p.add_argument(
        "--bundle", type=Path, help=setting_help("local product bundle", "model", "bundle")
    )
    p.add_argument(
        "--query-bundle",
        type=Path,
        help=setting_help("local query bundle", "serve", "query_bundle"),
    )
    p.add_argument("--host", help=setting_help("bind address of the API", "serve", "host"))
    p.add_argument("--port", type=int, help=setting_help("port of the API", "serve", "port"))
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        help=setting_help("batching wait budget, ms", "serve", "batch_wait_ms"),
    )
    p.add_argument(
        "--no-batching",
        action="store_true",
        help="one model run per request (PRODCAT_SERVE_BATCHING=false)",
    )
    add_service_flags(p, "this server's name (default: host name)")
    p.set_defaults(handler=_serve)
