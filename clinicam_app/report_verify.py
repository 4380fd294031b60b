"""``clinicam report verify FILE``: check a downloaded consultation report envelope.

Prints whether the signature is valid, who signed it and when, its key id (to compare
with the site's published ``report-signing.pub``) and the file's SHA-256, in the
technician's language; exit 0 when valid, 1 when not, 2 when a file cannot be read.
With ``--key PEM`` the envelope must also be signed by that key.
"""

from __future__ import annotations

import sys
from pathlib import Path

from clinicam.i18n import _, message_of, say


def verify_report(file: Path, key: Path | None) -> int:
    from server.reports.envelope import KeyProblem, public_key_of, verify_envelope

    try:
        data = file.read_bytes()
        trusted = public_key_of(key.read_bytes()) if key is not None else None
    except OSError as exc:
        say(
            _("error: cannot read {path}: {problem}", path=exc.filename, problem=exc.strerror),
            file=sys.stderr,
        )
        return 2
    except KeyProblem as exc:
        say(_("error: the key given: {problem}", problem=message_of(exc)), file=sys.stderr)
        return 2
    result = verify_envelope(data, trusted)
    envelope = result.envelope or {}
    signer = envelope.get("signer") if isinstance(envelope.get("signer"), dict) else {}
    assert isinstance(signer, dict)
    who = _(
        "{name} ({username})",
        name=str(signer.get("display_name", "?")),
        username=str(signer.get("username", "?")),
    )
    if result.valid:
        content = envelope.get("content", {})
        consultation = content.get("consultation", {}) if isinstance(content, dict) else {}
        say(
            _(
                "report signature valid: version {version} of consultation {cid}, "
                "signed by {signer} at {at}",
                version=envelope.get("version"),
                cid=consultation.get("id", "?"),
                signer=who,
                at=envelope.get("signed_at"),
            )
        )
    else:
        say(_("report signature INVALID: {problem}", problem=result.problem or ""), file=sys.stderr)
        if signer:
            say(_("it claims to be signed by {signer}", signer=who), file=sys.stderr)
    out = sys.stdout if result.valid else sys.stderr
    say(
        _(
            "key id {key_id} (compare it with the site's published report-signing key)",
            key_id=result.key_id or "?",
        ),
        file=out,
    )
    say(_("file SHA-256 {digest}", digest=result.digest), file=out)
    return 0 if result.valid else 1
