"""Merging an expert's edit into notes others changed meanwhile (diff-match-patch).

The edit is the change from the text the expert started from (``base``) to what they
sent; it is made into patches and applied, fuzzily, to the current text. Edits in
different places both stay; two insertions at the same place both stay. Should a patch
find no place to go (its surroundings were rewritten), what it inserted is appended at
the end rather than lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from diff_match_patch import diff_match_patch

DIFF_TIMEOUT_S = 1.0


def _engine() -> diff_match_patch:
    engine = diff_match_patch()
    engine.Diff_Timeout = DIFF_TIMEOUT_S
    return engine


@dataclass(frozen=True)
class Change:
    """How much a new version added and removed (characters), for the audit trail."""

    added: int
    removed: int


def merge(base: str, sent: str, current: str) -> str:
    """``current`` with the change from ``base`` to ``sent`` applied."""
    if current == base:
        return sent
    if sent == base:
        return current
    engine = _engine()
    patches = engine.patch_make(base, sent)
    merged, applied = engine.patch_apply(patches, current)
    lost = [
        "".join(text for op, text in patch.diffs if op == diff_match_patch.DIFF_INSERT)
        for patch, ok in zip(patches, applied, strict=True)
        if not ok
    ]
    kept = [text for text in lost if text]
    if kept:
        merged = merged + ("" if merged.endswith("\n") or not merged else "\n") + "\n".join(kept)
    return str(merged)


def change(before: str, after: str) -> Change:
    """Characters added and removed from ``before`` to ``after``."""
    diffs = _engine().diff_main(before, after, False)
    added = sum(len(t) for op, t in diffs if op == diff_match_patch.DIFF_INSERT)
    removed = sum(len(t) for op, t in diffs if op == diff_match_patch.DIFF_DELETE)
    return Change(added, removed)
