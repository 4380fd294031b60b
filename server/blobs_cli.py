"""``clinicam blobs migrate --to s3|local``: move a site's record content between stores.

Copies every blob the database references from the store ``[blobs] backend`` names to
the other one, verified and resumable (:mod:`server.records.blob_migration`), prints
progress and a summary, and audits the run as one entry with its counts under
``cli:<operating-system user>``. The site switches by changing ``[blobs] backend``
afterwards; the output says so.
"""

from __future__ import annotations

import getpass
import sys

from clinicam.i18n import _, localized, say
from server.archive.call_store import referenced_recording_blobs
from server.archive.segment_store import referenced_archive_blobs
from server.audit.log import AuditLog
from server.config import ServerConfig
from server.db import default_database_url, open_database
from server.fleet.models import referenced_release_blobs
from server.records.blob_migration import MigrationOutcome, migrate_blobs
from server.records.blob_stores import Backend, open_blob_store


def _progress(outcome: MigrationOutcome) -> None:
    line = _(
        "{done}/{total} blobs: {copied} copied, {present} already there, {failed} failed",
        done=outcome.done,
        total=outcome.total,
        copied=outcome.copied,
        present=outcome.present,
        failed=len(outcome.failed),
    )
    print(f"\r  {localized(line)}", end="", flush=True)  # i18n: not for people (layout)


def migrate(config: ServerConfig, to: Backend) -> int:
    """Copy the site's blobs to the ``to`` store; 0 when every one is there, verified."""
    current = config.blobs.backend
    if to == current:
        say(
            _("error: [blobs] backend is already {backend}; nothing to migrate", backend=to),
            file=sys.stderr,
        )
        return 2
    source = open_blob_store(config.blobs, config.state_dir)
    target = open_blob_store(config.blobs, config.state_dir, backend=to)
    database = open_database(config.database_url or default_database_url(config.state_dir))
    try:
        say(_("copying the site's blobs from {source} to {target}", source=current, target=to))
        outcome = migrate_blobs(
            database,
            source,
            target,
            on_progress=_progress,
            also_referenced=[
                referenced_recording_blobs,
                referenced_archive_blobs,
                referenced_release_blobs,
            ],
        )
        print()
        for sha256, problem in outcome.failed:
            say(_("  blob {sha256}: {problem}", sha256=sha256, problem=problem), file=sys.stderr)
        with database.session() as session, session.begin():
            AuditLog().append(
                session,
                f"cli:{getpass.getuser()}",
                "blobs.migrate",
                f"blobs:{to}",
                {
                    "from": current,
                    "to": to,
                    "total": outcome.total,
                    "copied": outcome.copied,
                    "present": outcome.present,
                    "failed": len(outcome.failed),
                },
            )
    finally:
        database.close()
    say(
        _(
            "blobs migrate: {copied} copied, {present} already there (verified), "
            "{failed} failed, of {total}",
            copied=outcome.copied,
            present=outcome.present,
            failed=len(outcome.failed),
            total=outcome.total,
        )
    )
    if outcome.failed:
        say(
            _("not every blob was copied; run the same command again to continue"),
            file=sys.stderr,
        )
        return 1
    say(
        _(
            'every blob is in the {target} store, verified: set [blobs] backend = "{target}" '
            "in the server's configuration and restart the server",
            target=to,
        )
    )
    return 0
