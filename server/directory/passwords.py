"""The password policy: long enough, not the user name, not one everybody tries first.

Length is the site's choice (``accounts.min_password_length``); the short list below
holds the passwords that top every published list of leaked ones (and their
hospital-flavoured cousins), compared without case and spaces.
"""

from __future__ import annotations

from typing import Final

from clinicam.i18n import _
from server.domain_errors import Invalid

MAX_PASSWORD_LENGTH: Final = 1024

COMMON_PASSWORDS: Final = frozenset(
    {
        "0123456789",
        "1111111111",
        "1234567890",
        "123456789a",
        "1234qwer",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "5201314520",
        "a123456789",
        "aa123456789",
        "abc1234567",
        "abcd123456",
        "abcdefghij",
        "admin12345",
        "administrator",
        "changeme123",
        "clinicam123",
        "doctor1234",
        "football123",
        "hospital123",
        "iloveyou123",
        "letmein123",
        "p@ssw0rd123",
        "passw0rd123",
        "password",
        "password1",
        "password12",
        "password123",
        "password1234",
        "qazwsxedc",
        "qazwsxedc123",
        "qwerty1234",
        "qwertyuiop",
        "qwertyuiop123",
        "welcome123",
        "woaini1314",
        "zxcvbnm123",
    }
)


def check_password(password: str, username: str, min_length: int) -> None:
    """Raise :class:`Invalid` naming the first rule ``password`` breaks."""
    if len(password) < min_length:
        raise Invalid(
            _("the password must have at least {count} characters", count=str(min_length)),
            code="password_short",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(_("the password is too long"), code="password_long")
    folded = password.casefold()
    if username.casefold() in folded:
        raise Invalid(_("the password must not contain the user name"), code="password_username")
    if "".join(folded.split()) in COMMON_PASSWORDS or len(set(folded)) <= 2:
        raise Invalid(
            _("this password is among the most common ones; choose another"),
            code="password_common",
        )
