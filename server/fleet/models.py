"""The release index (D5): one row per appliance release wheel the server offers.

The wheel's bytes are a blob in the site's :class:`~server.records.blobs.BlobStore`
(the local folder or the object store), named by the row's SHA-256; the blob is stored
before the row is committed, so a row never names a missing wheel.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.db import Base, UtcDateTime


class ApplianceRelease(Base):
    """A checked Clinicam wheel the appliances may install."""

    __tablename__ = "appliance_releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(40), unique=True)
    filename: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime)


def referenced_release_blobs(session: Session) -> set[str]:
    """The blobs the stored releases hold (the orphan collector must keep them)."""
    return set(session.scalars(select(ApplianceRelease.sha256).distinct()))
