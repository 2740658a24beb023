"""What `convlab token create | list | revoke` does, and the bootstrap admin token `convlab serve` makes when it
must: the operator's commands on the token table (their parser is in cli.py, which loads this only to run one)."""

import argparse
import sys
from pathlib import Path

from sqlalchemy.orm import Session

from service.access.principal import Scope
from service.config import Settings
from service.errors import ConvlabError
from service.storage import tokens
from service.storage.bootstrap import ensure_admin
from service.storage.db import begin_write, make_engine, make_session_factory, upgrade_database


def run_token_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run a `convlab token` sub-command against the configured database; 1 with the reason on error."""
    upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            begin_write(session)
            if args.token_command == "create":
                token, secret = tokens.create_token(
                    session, name=args.name, scopes=map(Scope, args.scope), predict_rate=args.predict_rate
                )
                session.commit()
                print(f"created token {token.name!r} with scopes {', '.join(token.scopes)}; it is shown only once:")
                print(secret)
            elif args.token_command == "set":
                token = tokens.set_predict_rate(session, args.name, args.predict_rate)
                session.commit()
                print(f"token {token.name!r}: predict rate {_describe(token.predict_rate)}")
            elif args.token_command == "list":
                _print_table(session)
            else:
                tokens.revoke_token(session, args.name)
                session.commit()
                print(f"revoked token {args.name!r}")
    except ConvlabError as exc:
        print(f"convlab token: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def _describe(rate: float | None) -> str:
    return "the server's (CONVLAB_PREDICT_RATE)" if rate is None else "no limit" if rate == 0 else f"{rate:g}/s"


def _print_table(session: Session) -> None:
    rows = [("NAME", "HINT", "SCOPES", "CREATED", "LAST USED", "PREDICT RATE")]
    for t in tokens.list_tokens(session):
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
        rate = "server" if t.predict_rate is None else f"{t.predict_rate:g}/s" if t.predict_rate else "none"
        rows.append((t.name, t.hint, ",".join(t.scopes), t.created_at.isoformat(timespec="seconds"), used, rate))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def bootstrap_admin(settings: Settings) -> None:
    """With auth required: install CONVLAB_ADMIN_TOKEN, or make a bootstrap admin token if there is no admin
    and print it once on standard error (never through logging, so no log handler keeps it)."""
    supplied = settings.access.admin_token.get_secret_value() if settings.access.admin_token else None
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            try:
                secret = ensure_admin(session, supplied=supplied)
                session.commit()
            except ConvlabError:  # another API process made the bootstrap token at the same moment
                return
    finally:
        engine.dispose()
    if secret is not None:
        print(
            "\nconvlab: authentication is required and no admin token existed, so one was made.\n"
            "It is shown only this once; keep it (e.g. export CONVLAB_TOKEN=...), and make others with\n"
            "`convlab token create NAME --scope ...` or POST /tokens:\n\n"
            f"    {secret}\n",
            file=sys.stderr,
            flush=True,
        )


def run_db_command(settings: Settings, args: argparse.Namespace) -> int:
    """`convlab db backup | restore | stats | prune | vacuum`: 0 when done, 1 with the reason on stderr if not."""
    from service.storage import backup, retention

    url = settings.database_url
    try:
        if args.db_command == "backup":
            print(backup.backup_database(url, Path(args.path)).describe("backed up to"))
        elif args.db_command == "restore":
            print(backup.restore_database(url, Path(args.path), force=args.force).describe())
        elif args.db_command == "stats":
            print(retention.database_stats(url, top=args.top).describe())
        elif args.db_command == "prune":
            keep = settings.queue.keep_checkpoints
            print(retention.prune_finished_jobs(url, default_keep=keep, dry_run=args.dry_run).describe())
        else:
            print(retention.vacuum_database(url, full=args.full).describe())
    except backup.BackupError as exc:
        print(f"convlab db {args.db_command}: {exc}", file=sys.stderr)
        return 1
    return 0
