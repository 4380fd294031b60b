"""Matching an access request against the preset permission rules (R14).

A rule names a subject (one user or a role) and a scope (listed patients, patient
groups, or everyone). A request is covered when some rule matches its subject and
scope and allows every requested operation; the grant then lasts no longer than the
shortest lifetime among the rules that cover it — the most conservative reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from server.config import AccessRule


@dataclass(frozen=True)
class RuleMatch:
    """Which rule covered a request, and the longest grant it allows."""

    number: int
    max_minutes: int

    @property
    def basis(self) -> str:
        return f"access rule {self.number}"


def _subject_matches(rule: AccessRule, username: str, role: str) -> bool:
    return rule.user == username if rule.user is not None else rule.role == role


def _scope_matches(rule: AccessRule, patient_external_id: str, group: str | None) -> bool:
    if rule.all_patients:
        return True
    if rule.patients:
        return patient_external_id in rule.patients
    return group is not None and group in rule.groups


def match_rules(
    rules: Sequence[AccessRule],
    *,
    username: str,
    role: str,
    patient_external_id: str,
    group: str | None,
    operations: Iterable[str],
) -> RuleMatch | None:
    """The first rule (1-based number) covering every requested operation, or None."""
    wanted = set(operations)
    for number, rule in enumerate(rules, start=1):
        if (
            _subject_matches(rule, username, role)
            and _scope_matches(rule, patient_external_id, group)
            and wanted <= set(rule.operations)
        ):
            return RuleMatch(number, rule.max_minutes)
    return None
