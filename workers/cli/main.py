"""The ``prodcat`` command line.

Every subcommand reads :class:`workers.core.settings.Settings` from the environment
first; flags given on the command line override it. Offline subcommands
(``train``, ``export``) import the ``export`` package lazily, so the serving
subcommands never load TensorFlow.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from workers.core.errors import ProdcatError
from workers.core.logs import setup_logging
from workers.core.settings import Settings, load_settings

log = logging.getLogger("prodcat")

Handler = Callable[[argparse.Namespace, Settings], int]


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connections (override PRODCAT_* settings)")
    group.add_argument("--bootstrap", help="Kafka bootstrap servers (PRODCAT_KAFKA_BOOTSTRAP)")
    group.add_argument("--redis-url", help="Redis URL (PRODCAT_REDIS_URL)")
    group.add_argument("--data-dir", type=Path, help="shared catalogs folder (PRODCAT_DATA_DIR)")
    group.add_argument("--log-level", help="log level (PRODCAT_LOG_LEVEL)")
    group.add_argument("--log-json", action="store_true", default=None, help="JSON log lines")


def settings_from(args: argparse.Namespace) -> Settings:
    """Environment settings with this invocation's flags applied on top."""
    overrides: dict[str, Any] = {}
    if getattr(args, "bootstrap", None):
        overrides["kafka"] = {"bootstrap": args.bootstrap}
    if getattr(args, "redis_url", None):
        overrides["redis"] = {"url": args.redis_url}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "log_level", None):
        overrides["log_level"] = args.log_level
    if getattr(args, "log_json", None):
        overrides["log_json"] = True
    if getattr(args, "bundle", None) and getattr(args, "command", "") != "predict":
        overrides["model"] = {"bundle": args.bundle}
    return load_settings(**overrides)


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from export.cli import train_command

    return train_command(args, settings)


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from export.cli import export_command

    return export_command(args, settings)


def _predict(args: argparse.Namespace, settings: Settings) -> int:
    from workers.inference.model import Classifier
    from workers.inference.predict import predict_file

    bundle = args.bundle or settings.model.bundle
    if bundle is None:
        raise ProdcatError("no bundle: pass --bundle DIR or set PRODCAT_MODEL_BUNDLE")
    classifier = Classifier.from_path(Path(bundle), top_k=args.top_k or settings.model.top_k)
    if args.out in (None, "-"):
        count = predict_file(classifier, Path(args.file), sys.stdout, batch_size=args.batch_size)
    else:
        with Path(args.out).open("w", encoding="utf-8") as out:
            count = predict_file(classifier, Path(args.file), out, batch_size=args.batch_size)
    log.info("classified %d products with model %s", count, classifier.version)
    return 0


def _classify(args: argparse.Namespace, settings: Settings) -> int:
    from workers.classify.worker import ClassifyWorker
    from workers.process.signals import install_stop_signals

    classify: dict[str, Any] = {}
    if args.group_id:
        classify["group_id"] = args.group_id
    if args.exactly_once:
        classify["exactly_once"] = True
    if classify:
        settings = settings.with_overrides(classify=classify)
    if args.metrics_port is not None:
        settings = settings.with_overrides(metrics={"port": args.metrics_port})
    worker = ClassifyWorker(settings, instance=args.instance)
    restore = install_stop_signals(worker.request_stop)
    try:
        try:
            worker.start()
        except BaseException:
            worker.stop()  # close whatever start() had opened
            raise
        worker.run()
    finally:
        restore()
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from workers.demo.run import run_demo

    return run_demo(args, settings)


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from workers.lifecycle.admin import ModelAdmin

    admin = ModelAdmin(settings, actor=args.by)
    print(
        admin.publish(
            args.bundle_dir,
            live=args.live,
            holdout=args.holdout,
            force=args.force,
            tolerance=args.tolerance,
        )
    )
    return 0


def _models(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from workers.lifecycle.admin import ModelAdmin, print_rows

    admin = ModelAdmin(settings, actor=getattr(args, "by", None))
    action = args.models_command
    if action == "list":
        print_rows(admin.rows(), sys.stdout, as_json=args.json)
    elif action == "show":
        print(json.dumps(admin.show(args.version), indent=2, default=str))
    elif action == "promote":
        print(
            admin.promote(
                args.version, holdout=args.holdout, force=args.force, tolerance=args.tolerance
            )
        )
    elif action == "rollback":
        print(admin.rollback(args.to))
    elif action == "canary":
        print(admin.canary(None if args.off else args.version, 0.0 if args.off else args.share))
    elif action == "shadow":
        print(admin.shadow(None if args.off else args.version))
    return 0


def _store_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", help="who makes the change (default: user@host)")


def _gate_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--holdout",
        type=Path,
        help="labelled CSV/JSONL both versions are scored on (default: the stored figures, "
        "when both bundles share a data fingerprint and split)",
    )
    parser.add_argument("--force", action="store_true", help="go live even if the gate refuses")
    parser.add_argument(
        "--tolerance", type=float, help="largest allowed drop (PRODCAT_MODEL_GATE_TOLERANCE)"
    )


def _model_parsers(sub: Any) -> None:
    p = sub.add_parser("publish", help="check a bundle, store it, announce it (optionally live)")
    _common(p)
    p.add_argument("bundle_dir", type=Path, metavar="BUNDLE", help="bundle directory")
    p.add_argument("--live", action="store_true", help="also make it the live version (gated)")
    _gate_flags(p)
    _store_flag(p)
    p.set_defaults(handler=_publish)

    p = sub.add_parser("models", help="list published versions; promote, roll back, canary")
    _common(p)
    actions = p.add_subparsers(dest="models_command", required=True)
    a = actions.add_parser("list", help="published versions with their metrics and roles")
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a = actions.add_parser("show", help="one version in full")
    a.add_argument("version")
    a = actions.add_parser("promote", help="make a published version live (gated)")
    a.add_argument("version")
    _gate_flags(a)
    _store_flag(a)
    a = actions.add_parser("rollback", help="make the previous live version live again")
    a.add_argument("--to", help="roll back to this version instead of the previous one")
    _store_flag(a)
    a = actions.add_parser("canary", help="serve a share of products with a candidate")
    a.add_argument("version", nargs="?")
    a.add_argument("--share", type=float, default=0.05, help="share of products, 0..1")
    a.add_argument("--off", action="store_true", help="stop the canary")
    _store_flag(a)
    a = actions.add_parser("shadow", help="run a candidate beside the live version, unpublished")
    a.add_argument("version", nargs="?")
    a.add_argument("--off", action="store_true", help="stop the shadow")
    _store_flag(a)
    p.set_defaults(handler=_models)


def _feedback(args: argparse.Namespace, settings: Settings) -> int:
    from workers.feedback.app import FeedbackApp
    from workers.process.signals import install_stop_signals

    if args.metrics_port is not None:
        settings = settings.with_overrides(metrics={"port": args.metrics_port})
    app = FeedbackApp(settings, instance=args.instance)
    restore = install_stop_signals(app.request_stop)
    try:
        try:
            app.start()
            app.run()
        finally:
            app.stop()
    finally:
        restore()
    return 0


def _labels(args: argparse.Namespace, settings: Settings) -> int:
    from workers.feedback.labels import dump_labels

    if args.out in (None, "-"):
        count = dump_labels(settings, sys.stdout.buffer, timeout_s=args.timeout)
    else:
        count = dump_labels(settings, Path(args.out), timeout_s=args.timeout)
    log.info("dumped %d labels from %s", count, settings.topics.labels)
    return 0


def _feedback_parsers(sub: Any) -> None:
    p = sub.add_parser("feedback", help="run the feedback app (overrides, labels, quality)")
    _common(p)
    p.add_argument("--bundle", type=Path, help="bundle whose taxonomy checks categories")
    p.add_argument(
        "--metrics-port",
        type=int,
        help="port of /metrics, /healthz, /readyz; 0 disables (PRODCAT_METRICS_PORT)",
    )
    p.add_argument("--instance", help="this app instance's name (default: host name)")
    p.set_defaults(handler=_feedback)

    p = sub.add_parser("labels", help="training labels from the feedback app")
    _common(p)
    actions = p.add_subparsers(dest="labels_command", required=True)
    a = actions.add_parser(
        "dump", help="newest label per product from category.labels as JSONL (for train --labels)"
    )
    a.add_argument("--out", help="output JSONL file (default: stdout)")
    a.add_argument("--timeout", type=float, default=30.0, help="seconds to reach the topic end")
    p.set_defaults(handler=_labels)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prodcat", description="Real-time product categorization."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train, evaluate and export a model bundle")
    _common(p)
    p.add_argument(
        "--data",
        action="append",
        required=True,
        help="dataset name (e.g. bigbasket) or CSV/JSONL catalog file; repeatable",
    )
    p.add_argument(
        "--labels",
        action="append",
        type=Path,
        default=[],
        help="extra labels file (e.g. from category.labels); newer labels win",
    )
    p.add_argument("--out", type=Path, default=Path("var/bundles"), help="bundle output folder")
    p.add_argument(
        "--candidates",
        help="architectures to try, comma-separated: fasttext, twotower, charcnn; NAME@K "
        "trains NAME again with seed + K, e.g. fasttext,fasttext@1 "
        "(default: the dataset's registry entry, else fasttext,twotower)",
    )
    p.add_argument("--epochs", type=int, help="maximum epochs per candidate")
    p.add_argument("--limit", type=int, help="use a seeded sample of N rows per dataset")
    p.add_argument("--seed", type=int, default=0, help="seed for split and training")
    p.add_argument(
        "--target-precision",
        type=float,
        default=0.9,
        help="precision the back-off thresholds aim for on validation data",
    )
    p.add_argument("--dim", type=int, help="embedding size (default 64)")
    p.add_argument(
        "--label-smoothing",
        type=float,
        help="label smoothing of the training loss (default 0, or the dataset's registry entry)",
    )
    p.add_argument("--buckets", type=int, help="hash buckets per id table (default 2**18)")
    p.add_argument("--no-baseline", action="store_true", help="skip the TF-IDF baseline")
    p.add_argument("--version", help="bundle version (default: dataset-timestamp-fingerprint)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    p.set_defaults(handler=_train)

    p = sub.add_parser("export", help="verify a bundle and pack it as one .tar.gz archive")
    _common(p)
    p.add_argument("bundle", type=Path, help="bundle directory")
    p.add_argument("--out", type=Path, help="archive path (default: BUNDLE.tar.gz)")
    p.set_defaults(handler=_export)

    p = sub.add_parser("predict", help="classify a CSV/JSONL file of products into JSONL")
    _common(p)
    p.add_argument("file", help="products file (CSV with header, or JSONL)")
    p.add_argument("--bundle", type=Path, help="bundle directory or archive (PRODCAT_MODEL_BUNDLE)")
    p.add_argument("--out", help="output JSONL (default: stdout)")
    p.add_argument("--batch-size", type=int, default=1024, help="products per model batch")
    p.add_argument("--top-k", type=int, help="alternatives per product (PRODCAT_MODEL_TOP_K)")
    p.set_defaults(handler=_predict)

    p = sub.add_parser("classify", help="run a classify worker")
    _common(p)
    p.add_argument("--bundle", type=Path, help="bundle directory or archive (PRODCAT_MODEL_BUNDLE)")
    p.add_argument("--group-id", help="consumer group (PRODCAT_CLASSIFY_GROUP_ID)")
    p.add_argument(
        "--exactly-once",
        action="store_true",
        default=None,
        help="transactional outputs and offsets (PRODCAT_CLASSIFY_EXACTLY_ONCE)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="port of /metrics, /healthz, /readyz; 0 disables (PRODCAT_METRICS_PORT)",
    )
    p.add_argument(
        "--instance",
        help="this worker's stable name (default: host name); in exactly-once mode "
        "it makes the transactional.id, so give each worker its own",
    )
    p.set_defaults(handler=_classify)

    p = sub.add_parser("demo", help="end-to-end demo on real catalog data")
    _common(p)
    p.add_argument("--bundle", type=Path, help="serve this bundle instead of training one")
    p.add_argument("--rate", type=float, default=200.0, help="products replayed per second")
    p.add_argument("--count", type=int, default=4000, help="held-out products to replay")
    p.add_argument(
        "--duration", type=float, help="replay for about this many seconds (overrides --count)"
    )
    p.add_argument(
        "--corrections", type=int, default=3, help="scripted moderator corrections to send"
    )
    p.add_argument(
        "--datasets",
        type=lambda text: tuple(x for x in text.split(",") if x),
        default=("bigbasket", "cn_ecommerce_products"),
        help="catalogs to train on and replay (English and Chinese by default)",
    )
    p.add_argument("--train-rows", type=int, default=20000, help="training rows per catalog")
    p.set_defaults(handler=_demo)

    _model_parsers(sub)

    _feedback_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        print(f"prodcat: invalid settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_json)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except ProdcatError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
