"""The append-only, hash-chained audit log (who did what to which record, and when)."""

from __future__ import annotations

from server.audit.log import AuditEntry, AuditLog, Problem, VerifyResult
from server.audit.verify import verify_chain, verify_database

__all__ = ["AuditEntry", "AuditLog", "Problem", "VerifyResult", "verify_chain", "verify_database"]
