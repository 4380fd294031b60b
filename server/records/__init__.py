"""Patient records: content-addressed blob store, one table family per category.

The way through: the views (:mod:`server.web.records`, ``snapshots``, ``present``,
``records_import``) parse a request and call one service (``service.RecordsService``,
``appliance_snapshots.SnapshotService``, :class:`server.presenting.PresentationService`,
``importer.ImportService``); every record that arrives goes through the one filing
pipeline (``filing.RecordFiling``: inspect, blob, row, audit entry, one transaction);
content is reached only through the ``blobs.BlobStore`` protocol. The database itself
is :mod:`server.db`; records import nothing of access, archive, relevance, media or the
app state (what they need from access, such as ``may_edit``, is passed in).
"""

from __future__ import annotations
