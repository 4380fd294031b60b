"""Applying a :class:`~firmware.provisioning.plan.Plan` to the system under ``root``.

The steps run in :data:`STEPS` order; each one is idempotent and every write is
atomic, so a crash between (or inside) steps is repaired by running the same plan
again: the provisioning file stays on the boot partition until the very end.

The TLS files are installed before the appliance configuration that points at them,
and files the new configuration no longer uses are removed only after it is in place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from clinicam.i18n import N_
from firmware.provisioning import appliance, nmconnection, sysfiles
from firmware.provisioning.plan import Plan
from firmware.provisioning.sysfiles import under

_LOGGER = logging.getLogger(__name__)

ETC_CLINICAM = PurePosixPath("/etc/clinicam")
WIFI_COUNTRY_CONF = PurePosixPath("/etc/modprobe.d/clinicam-wifi-country.conf")
TIMEZONE_FILE = PurePosixPath("/etc/timezone")
LOCALTIME = PurePosixPath("/etc/localtime")
ZONEINFO_DIR = PurePosixPath("/usr/share/zoneinfo")
TLS_NAMES = (appliance.CA_FILE, appliance.CERT_FILE, appliance.KEY_FILE)


def install_tls(plan: Plan, root: Path) -> None:
    """CA and client certificate/key into /etc/clinicam/tls (0600, service account)."""
    if not plan.tls_files:
        return
    owner = sysfiles.service_owner(root)
    sysfiles.ensure_dir(under(root, ETC_CLINICAM), mode=0o700, owner=owner)
    folder = under(root, appliance.TLS_DIR)
    sysfiles.ensure_dir(folder, mode=0o700, owner=owner)
    for name, data in plan.tls_files.items():
        sysfiles.install_file(folder / name, data, mode=0o600, owner=owner)


def install_appliance_config(plan: Plan, root: Path) -> None:
    """/etc/clinicam/appliance.toml (0600, readable by the service account only)."""
    owner = sysfiles.service_owner(root)
    sysfiles.ensure_dir(under(root, ETC_CLINICAM), mode=0o700, owner=owner)
    path = under(root, appliance.APPLIANCE_TOML)
    sysfiles.install_file(path, plan.appliance_toml, mode=0o600, owner=owner)


def remove_unused_tls(plan: Plan, root: Path) -> None:
    """Certificates and keys an earlier provisioning installed that are no longer used."""
    folder = under(root, appliance.TLS_DIR)
    for name in TLS_NAMES:
        if name not in plan.tls_files and sysfiles.remove(folder / name):
            _LOGGER.info("removed unused %s", appliance.TLS_DIR / name)


def install_networks(plan: Plan, root: Path) -> None:
    """NetworkManager keyfiles (root, 0600); earlier clinicam-* networks not listed go."""
    if not plan.replaces_networks:
        return
    folder = under(root, nmconnection.SYSTEM_CONNECTIONS)
    sysfiles.ensure_dir(folder, mode=0o700)
    for name, data in plan.networks.items():
        sysfiles.install_file(folder / name, data, mode=0o600)
    pattern = f"{nmconnection.FILE_PREFIX}*{nmconnection.FILE_SUFFIX}"
    for old in sorted(folder.glob(pattern)):
        if old.name not in plan.networks:
            sysfiles.remove(old)
            _LOGGER.info("removed Wi-Fi connection %s (not in clinicam.toml)", old.name)


def install_wifi_country(plan: Plan, root: Path) -> None:
    """The Wi-Fi regulatory country, for cfg80211 from the next boot on."""
    if plan.wifi_country is None:
        return
    text = (
        "# Written by clinicam provisioning\n"
        f"options cfg80211 ieee80211_regdom={plan.wifi_country}\n"
    )
    sysfiles.install_file(under(root, WIFI_COUNTRY_CONF), text.encode(), mode=0o644)


def install_timezone(plan: Plan, root: Path) -> None:
    """/etc/timezone and the /etc/localtime symlink (what timedatectl set-timezone does)."""
    if plan.timezone is None:
        return
    sysfiles.install_file(under(root, TIMEZONE_FILE), f"{plan.timezone}\n".encode(), mode=0o644)
    sysfiles.install_symlink(under(root, LOCALTIME), str(ZONEINFO_DIR / plan.timezone))


STEPS: tuple[tuple[str, Callable[[Plan, Path], None]], ...] = (
    (N_("TLS certificates"), install_tls),
    (N_("appliance configuration"), install_appliance_config),
    (N_("unused certificates"), remove_unused_tls),
    (N_("Wi-Fi networks"), install_networks),
    (N_("Wi-Fi country"), install_wifi_country),
    (N_("time zone"), install_timezone),
)
"""(what, step) in the order they run; ``what`` is a catalogue message id (for the log)."""
