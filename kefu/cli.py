"""`kefu` command line: database set-up and seeding, NLU catalogue export.

Errors that an operator can fix (a bad DATABASE_URL, a database that is
down) are printed as one line naming the cause, with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from kefu.db.engine import DatabaseError, database_url, describe_url


def _cmd_db_init(args: argparse.Namespace) -> int:
    from kefu.db.engine import ensure_schema, get_engine

    version = ensure_schema(get_engine())
    print(f"shop database ready (schema version {version}) at {describe_url(database_url())}")
    return 0


def _cmd_db_seed(args: argparse.Namespace) -> int:
    from kefu.shop.demo import seed_command

    return seed_command(
        orders=args.orders, reset=args.reset, if_empty=args.if_empty, seed=args.seed, progress=not args.quiet
    )


def _cmd_db_showcase(args: argparse.Namespace) -> int:
    from kefu.shop.demo import print_showcase

    return print_showcase()


def _cmd_db_check(args: argparse.Namespace) -> int:
    from kefu.db.engine import check_connection, current_schema_version, get_engine

    engine = get_engine()
    check_connection(engine)
    print(f"ok: {describe_url(database_url())}, schema version {current_schema_version(engine)}")
    return 0


def _cmd_db_backup(args: argparse.Namespace) -> int:
    from kefu.backup import backup

    for line in backup(args.path):
        print(line)
    return 0


def _cmd_db_restore(args: argparse.Namespace) -> int:
    from kefu.backup import restore

    try:
        lines = restore(args.path)
    except FileNotFoundError as exc:
        print(f"kefu: error: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


def _cmd_nlu_export(args: argparse.Namespace) -> int:
    from kefu.nlu.catalogue_export import export_command

    return export_command(data_file=args.data_file, dictionary_dir=args.dictionary_dir)


def _cmd_staff_add(args: argparse.Namespace) -> int:
    """Password from the terminal (asked twice), or the first line of stdin."""
    import getpass

    from kefu.console.store import ConsoleStore, StaffError
    from kefu.db.engine import ensure_schema, get_engine

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    ensure_schema(get_engine())
    try:
        staff = ConsoleStore().add_staff(args.name, args.role, password)
    except StaffError as exc:
        print(f"cannot add {args.name}: {exc}", file=sys.stderr)
        return 2
    print(f"staff account {staff.name} ({staff.role}) ready: sign in at http://localhost:8080/console/")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from datetime import date
    from pathlib import Path

    from kefu.analytics.consumer import SQLBrokerConsumer
    from kefu.analytics.figures import Period, compute
    from kefu.analytics.report import csv_tables, html_report
    from kefu.db.engine import ensure_schema, get_engine

    try:
        period = Period(date.fromisoformat(args.date_from), date.fromisoformat(args.date_to), by=args.by)
    except ValueError:
        print("kefu: error: --from and --to are dates like 2026-11-01", file=sys.stderr)
        return 2
    if period.last < period.first:
        print("kefu: error: --to is before --from", file=sys.stderr)
        return 2
    engine = get_engine()
    ensure_schema(engine)
    SQLBrokerConsumer(engine).drain()  # the events published until now count
    figures = compute(engine, period)
    out = Path(args.out)
    if args.format == "csv":
        out.mkdir(parents=True, exist_ok=True)
        for name, text in csv_tables(figures).items():
            (out / f"{name}.csv").write_text("\ufeff" + text, encoding="utf-8")
        print(f"CSV tables written to {out}/")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html_report(figures), encoding="utf-8")
        print(f"report written to {out} ({figures['totals']['conversations']} conversations)")
    return 0


def _cmd_analytics_demo(args: argparse.Namespace) -> int:
    from kefu.analytics.demo import generate_demo_month
    from kefu.db.engine import ensure_schema, get_engine

    engine = get_engine()
    ensure_schema(engine)
    summary = generate_demo_month(engine, days=args.days, if_empty=args.if_empty)
    print(summary)
    return 0


def _cmd_analytics_consume(args: argparse.Namespace) -> int:
    from kefu.analytics.consumer import SQLBrokerConsumer
    from kefu.db.engine import ensure_schema, get_engine

    engine = get_engine()
    ensure_schema(engine)
    consumer = SQLBrokerConsumer(engine)
    print(f"{consumer.drain()} broker rows applied; position {consumer.position()}")
    return 0


def _cmd_nlu_export_reviewed(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kefu.analytics.review import export_reviewed
    from kefu.db.engine import ensure_schema, get_engine

    engine = get_engine()
    ensure_schema(engine)
    count = export_reviewed(engine, Path(args.out))
    print(f"{count} reviewed examples written to {args.out}")
    return 0


def _cmd_demo_advance(args: argparse.Namespace) -> int:
    from kefu.db.engine import ensure_schema, get_engine
    from kefu.notices.demo import advance

    engine = get_engine()
    ensure_schema(engine)
    lines = advance(engine)
    for line in lines:
        print(line)
    print(f"{len(lines)} changes; the notice worker (make run) turns them into notices within seconds")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kefu", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="shop database").add_subparsers(dest="db_command", required=True)
    db.add_parser("init", help="create tables / migrate to the current schema").set_defaults(func=_cmd_db_init)
    db.add_parser("check", help="check that DATABASE_URL answers").set_defaults(func=_cmd_db_check)
    seed = db.add_parser("seed", help="fill the demo shop (deterministic)")
    seed.add_argument("--orders", type=int, default=1000, help="number of orders (default 1000)")
    seed.add_argument("--reset", action="store_true", help="drop all shop data first (reseed)")
    seed.add_argument("--if-empty", action="store_true", help="do nothing if the shop already has products")
    seed.add_argument("--seed", type=int, default=20261124, help="random seed (same seed, same rows)")
    seed.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    seed.set_defaults(func=_cmd_db_seed)
    db.add_parser("showcase", help="list the demo orders to try, with their phone tails").set_defaults(
        func=_cmd_db_showcase
    )

    backup = db.add_parser("backup", help="online copy of the SQLite shop and conversations into a directory")
    backup.add_argument("path", type=Path)
    backup.set_defaults(func=_cmd_db_backup)
    restore = db.add_parser("restore", help="copy a backup directory back (stop the bot first)")
    restore.add_argument("path", type=Path)
    restore.set_defaults(func=_cmd_db_restore)
    staff = sub.add_parser("staff", help="agent console accounts").add_subparsers(dest="staff_command", required=True)
    add = staff.add_parser("add", help="create an account, or set its role and password (password asked, or stdin)")
    add.add_argument("name")
    add.add_argument("--role", choices=("agent", "admin"), default="agent")
    add.set_defaults(func=_cmd_staff_add)

    nlu = sub.add_parser("nlu", help="NLU assets").add_subparsers(dest="nlu_command", required=True)
    export = nlu.add_parser("export", help="write catalogue lookup tables/synonyms and the jieba dictionary")
    export.add_argument("--data-file", default="data/catalogue.yml")
    export.add_argument("--dictionary-dir", default="var/nlu/jieba")
    export.set_defaults(func=_cmd_nlu_export)
    reviewed = nlu.add_parser(
        "export-reviewed", help="write not-understood messages an admin assigned to an intent as NLU data"
    )
    reviewed.add_argument("--out", default="data/nlu/reviewed.yml")
    reviewed.set_defaults(func=_cmd_nlu_export_reviewed)

    report = sub.add_parser("report", help="analytics report for a date range (HTML with charts, or CSV)")
    report.add_argument("--from", dest="date_from", required=True, help="first day, e.g. 2026-11-01 (China time)")
    report.add_argument("--to", dest="date_to", required=True, help="last day, included")
    report.add_argument("--by", choices=("day", "week"), default="day")
    report.add_argument("--format", choices=("html", "csv"), default="html")
    report.add_argument("--out", default="report.html", help="the HTML file, or the directory for CSV files")
    report.set_defaults(func=_cmd_report)

    analytics = sub.add_parser("analytics", help="analytics store").add_subparsers(
        dest="analytics_command", required=True
    )
    demo = analytics.add_parser("demo", help="replay a deterministic month of demo conversations' events")
    demo.add_argument("--days", type=int, default=30)
    demo.add_argument("--if-empty", action="store_true", help="do nothing if analytics already has conversations")
    demo.set_defaults(func=_cmd_analytics_demo)
    analytics.add_parser("consume", help="apply the SQL event broker's new events and stop").set_defaults(
        func=_cmd_analytics_consume
    )
    demo_shop = sub.add_parser("demo", help="the demo shop").add_subparsers(dest="demo_command", required=True)
    demo_shop.add_parser(
        "advance", help="move demo orders along (deliveries, shipments, a payment, ticket decisions)"
    ).set_defaults(func=_cmd_demo_advance)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except DatabaseError as exc:
        print(f"kefu: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kefu: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
