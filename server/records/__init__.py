"""Patient records: database, content-addressed blob store, one table family per category.

The way through: the views (``views``, ``snapshots``, ``present``, ``import_views``) parse
a request and call one service (``service.RecordsService``,
``appliance_snapshots.SnapshotService``, ``presenting.PresentationService``,
``importer.ImportService``); every record that arrives goes through the one filing
pipeline (``filing.RecordFiling``: inspect, blob, row, audit entry, one transaction);
content is reached only through the ``blobs.BlobStore`` protocol.
"""

from __future__ import annotations
