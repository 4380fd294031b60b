"""mosquitto's password file, written without mosquitto_passwd, reads both ways."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from clinicam import broker_files


def test_a_hash_mosquitto_passwd_wrote_is_checked_and_ours_has_its_shape(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    path = tmp_path / "passwd"
    path.write_text("")
    subprocess.run([tool, "-b", str(path), "ward-3", "s3cret pw"], check=True)
    theirs = broker_files.parse_password_file(path.read_text())["ward-3"]
    assert broker_files.password_matches(theirs, "s3cret pw")
    assert not broker_files.password_matches(theirs, "s3cret pw ")
    ours = broker_files.hash_password("s3cret pw")
    assert ours.split("$")[1:3] == theirs.split("$")[1:3] == ["7", "101"]
    assert broker_files.password_matches(ours, "s3cret pw") and ours != theirs  # own salt


def test_password_file_round_trip_and_refuses_a_bad_user_name() -> None:
    text = broker_files.password_file_text({"b": "$7$1$x$y", "a": "$7$1$z$w"})
    assert text == "a:$7$1$z$w\nb:$7$1$x$y\n"
    assert broker_files.parse_password_file("# c\n\n" + text) == {"a": "$7$1$z$w", "b": "$7$1$x$y"}
    for bad in ("", "a:b", "a b"):
        with pytest.raises(ValueError):
            broker_files.password_file_text({bad: "$7$1$x$y"})
    assert not broker_files.password_matches("$6$plain", "x")
