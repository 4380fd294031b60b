"""A link testbed: namespaces for the clinic, the server and the experts, joined by
veth links shaped like rural connections (rate, delay, loss, outages). Needs root.

    from tests.netlab import PROFILES, Testbed

    with Testbed(leaves=["clinic", "expert1"]) as bed:
        bed.shape("clinic", PROFILES["3g"])
        server = bed.popen("server", ["python", "-m", "server", "--host", "0.0.0.0"])
        bed.run("clinic", ["python", "-m", "firmware", "--server", bed.address("server")])
        bed.outage("clinic", 5.0).wait()

Measurement helpers for tests and ``bench/links.py`` are in ``tests.netlab.measure``.
"""

from __future__ import annotations

from tests.netlab.netns import CommandFailed, NetlabUnavailable
from tests.netlab.profiles import DEFAULT_OUTAGE_S, LAN, PROFILES, LinkProfile
from tests.netlab.testbed import SERVER, SERVER_ADDRESS, Outage, Testbed

__all__ = [
    "DEFAULT_OUTAGE_S",
    "LAN",
    "PROFILES",
    "SERVER",
    "SERVER_ADDRESS",
    "CommandFailed",
    "LinkProfile",
    "NetlabUnavailable",
    "Outage",
    "Testbed",
]
