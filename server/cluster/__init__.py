"""Several media workers (issue 21): each live consultation pinned to one by a Redis lease.

Absent ``[cluster]`` the server is one process and needs no Redis. With it, media
workers announce themselves and beat (:class:`WorkerHeartbeat`), and a web front asks
:meth:`LeaseBook.pin` which worker runs a consultation before it routes an offer or a
room socket there. Knows nothing of rooms or media: it hands out worker ids and URLs.
"""

from server.cluster.coordination import Coordination
from server.cluster.heartbeat import WorkerHeartbeat
from server.cluster.leases import LeaseBook, least_loaded
from server.cluster.store import CoordinationUnavailable, Keys, NoWorkerAvailable, connect
from server.cluster.workers import Beat, WorkerInfo, WorkerRegistry

__all__ = [
    "Beat",
    "Coordination",
    "CoordinationUnavailable",
    "Keys",
    "LeaseBook",
    "NoWorkerAvailable",
    "WorkerHeartbeat",
    "WorkerInfo",
    "WorkerRegistry",
    "connect",
    "least_loaded",
]
