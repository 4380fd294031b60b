"""What each person chose for themselves: today, the language their pages speak.

A choice is stored per user name (the directory may later move into the database; the
name stays the key), changes together with its audit entry, and is cached in memory:
every page and every error answer asks for it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from clinicam.i18n import LOCALES, _
from server.audit.trail import AuditTrail
from server.db import Base, Database, UtcDateTime, utcnow
from server.domain_errors import Invalid


class UserPreference(Base):
    """One person's own settings."""

    __tablename__ = "user_preferences"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    locale: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PreferenceDesk:
    """Reads and changes people's own settings; a change commits with its audit entry."""

    def __init__(self, database: Database, audit: AuditTrail) -> None:
        self._database = database
        self._audit = audit
        self._locales: dict[str, str | None] = {}

    async def locale(self, username: str) -> str | None:
        """The language ``username`` chose, or None (then their browser decides)."""
        if username in self._locales:
            return self._locales[username]

        def read() -> str | None:
            with self._database.session() as session:
                row = session.get(UserPreference, username)
                return row.locale if row else None

        chosen = await asyncio.to_thread(read)
        self._locales[username] = chosen
        return chosen

    async def choose_locale(self, username: str, locale: str) -> None:
        """Make ``locale`` the language of ``username``'s pages, messages and video text."""
        if locale not in LOCALES:
            raise Invalid(_("language not offered: {locale}", locale=locale[:16]))

        def work() -> None:
            with self._database.session() as session, session.begin():
                row = session.scalars(
                    select(UserPreference).where(UserPreference.username == username)
                ).first()
                before = row.locale if row else None
                if row is None:
                    session.add(UserPreference(username=username, locale=locale))
                else:
                    row.locale = locale
                    row.updated_at = utcnow()
                self._audit.write(
                    session,
                    username,
                    "account.language",
                    f"user:{username}",
                    {"from": before, "to": locale},
                )

        await asyncio.to_thread(work)
        self._locales[username] = locale
