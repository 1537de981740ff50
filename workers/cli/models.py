"""``prodcat publish`` and ``prodcat models``: the model lifecycle from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, Any

from workers.cli.common import ConnectionFlags, Subparsers, setting_help
from workers.core.settings import Settings

__all__ = ["register"]


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


def nothing_published(settings: Settings) -> str:
    """What ``prodcat models list`` says when no version is published yet."""
    return (
        f"no model version is published on {settings.topics.models} "
        f"(Kafka {settings.kafka.bootstrap}; model store {settings.model.store}).\n"
        "To publish one: prodcat train --data CATALOG --out var/bundles, then\n"
        "                prodcat publish var/bundles/<version> --live\n"
        "(CATALOG: a shared catalog name such as bigbasket, or a CSV/JSONL products file; "
        "see README 'Model lifecycle')."
    )


def _models(args: argparse.Namespace, settings: Settings) -> int:
    from workers.lifecycle.admin import ModelAdmin

    admin = ModelAdmin(settings, actor=getattr(args, "by", None))
    action = args.models_command
    if action == "list":
        rows = admin.rows()
        if not rows and not args.json:
            print(nothing_published(settings))
        else:
            print_rows(rows, sys.stdout, as_json=args.json)
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
    elif action == "gate":
        print(
            admin.gate(
                args.version,
                holdout=args.holdout,
                labels=args.labels,
                tolerance=args.tolerance,
                min_fixed=args.min_fixed,
            )
        )
    elif action == "judge":
        return _judge(args, settings, admin)
    return 0


def _judge(args: argparse.Namespace, settings: Settings, admin: Any) -> int:
    from workers.process.signals import serve
    from workers.rollout.controller import CanaryController

    controller = CanaryController(settings, admin=admin)
    if not args.once:
        serve(controller)
        return 0
    result = controller.step()
    if result.canary is None:
        print(f"no canary beside the live version {result.live or '(none)'}: nothing to judge")
    elif result.decision is not None:
        d = result.decision
        print(f"{d.verdict} {d.candidate_version}: {d.reason}")
        if result.acted:
            print(result.acted)
    elif result.judgement is not None:
        print(f"continue {result.canary}: {result.judgement.reason}")
    return 0


def _by_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", help="who makes the change (default: user@host)")


def _gate_flags(parser: argparse.ArgumentParser, *, force: bool = True) -> None:
    parser.add_argument(
        "--holdout",
        type=Path,
        help="labelled CSV/JSONL both versions are scored on (default: the stored figures, "
        "when both bundles share a data fingerprint and split)",
    )
    if force:
        parser.add_argument("--force", action="store_true", help="go live even if the gate refuses")
    parser.add_argument(
        "--tolerance",
        type=float,
        help=setting_help("largest allowed drop", "model", "gate_tolerance"),
    )


def register(sub: Subparsers, common: ConnectionFlags) -> None:
    p = sub.add_parser("publish", help="check a bundle, store it, announce it (optionally live)")
    common(p, kafka=True)
    p.add_argument("bundle_dir", type=Path, metavar="BUNDLE", help="bundle directory")
    p.add_argument("--live", action="store_true", help="also make it the live version (gated)")
    _gate_flags(p)
    _by_flag(p)
    p.set_defaults(handler=_publish)

    p = sub.add_parser("models", help="list published versions; promote, roll back, canary")
    actions = p.add_subparsers(dest="models_command", required=True)
    a = actions.add_parser("list", help="published versions with their metrics and roles")
    a.add_argument("--json", action="store_true", help="one JSON object per line")
    a = actions.add_parser("show", help="one version in full")
    a.add_argument("version")
    a = actions.add_parser("promote", help="make a published version live (gated)")
    a.add_argument("version")
    _gate_flags(a)
    _by_flag(a)
    a = actions.add_parser("rollback", help="make the previous live version live again")
    a.add_argument("--to", help="roll back to this version instead of the previous one")
    _by_flag(a)
    a = actions.add_parser("canary", help="serve a share of products with a candidate")
    a.add_argument("version", nargs="?")
    a.add_argument("--share", type=float, default=0.05, help="share of products, 0..1")
    a.add_argument("--off", action="store_true", help="stop the canary")
    _by_flag(a)
    a = actions.add_parser("shadow", help="run a candidate beside the live version, unpublished")
    a.add_argument("version", nargs="?")
    a.add_argument("--off", action="store_true", help="stop the shadow")
    _by_flag(a)
    a = actions.add_parser(
        "gate",
        help="check a published candidate against the live version offline, changing nothing "
        "(exit 0: passed; 1 with the reason: refused)",
    )
    a.add_argument("version")
    _gate_flags(a, force=False)
    a.add_argument(
        "--labels",
        type=Path,
        help="a prodcat labels dump file: of its corrections made after the live bundle, those "
        "the live model answers wrong must be answered right by the candidate",
    )
    a.add_argument(
        "--min-fixed",
        type=float,
        default=0.5,
        help="share of those the candidate must answer right (default 0.5)",
    )
    a = actions.add_parser(
        "judge",
        help="the canary controller: judge the canary on online acceptance, then promote it "
        "or stop it, and record the decision (PRODCAT_ROLLOUT_*)",
    )
    a.add_argument("--once", action="store_true", help="one judgement, then exit")
    for action in actions.choices.values():  # flags after the action: models list --bootstrap
        common(action, kafka=True)
    p.set_defaults(handler=_models)


def print_rows(rows: list[dict[str, Any]], out: IO[str], *, as_json: bool = False) -> None:
    """``prodcat models list`` output: a table, or one JSON object per line."""
    if as_json:
        for row in rows:
            out.write(json.dumps(row) + "\n")
        return
    header = f"{'version':<44} {'role':<16} {'wF1':>6} {'acc':>6} {'labels':>6}  created"
    out.write(header + "\n")
    for r in rows:
        wf1 = "-" if r["weighted_f1"] is None else f"{r['weighted_f1']:.3f}"
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        out.write(
            f"{r['version']:<44} {r['role'] or '-':<16} {wf1:>6} {acc:>6} {r['labels']:>6}  "
            f"{r['created_at']}\n"
        )
