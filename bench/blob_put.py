"""Blob store throughput: the local folder against a real SeaweedFS S3 gateway on loopback.

Stores one blob of random content (streamed, as an upload is) in each store, then reads
it back through the verifying stream; both on this machine, so the S3 figure is the
protocol's and the gateway's cost, not a network's.

    python bench/blob_put.py [--quick]

Last line: JSON with mb, local_put_mb_s, s3_put_mb_s, local_get_mb_s, s3_get_mb_s
(``measure`` gives the same to other benches, e.g. scale_out's s3_put_mb_s).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.records.blob_stores import open_blob_store  # noqa: E402
from server.records.blobs import BlobStore, LocalBlobStore  # noqa: E402
from tests.seaweed import start_seaweed  # noqa: E402


def _mb_s(store: BlobStore, content: bytes) -> tuple[float, float]:
    started = time.perf_counter()
    ref = store.put(io.BytesIO(content), max_bytes=len(content))
    put_s = time.perf_counter() - started
    started = time.perf_counter()
    with store.open(ref.sha256) as stream:
        while stream.read(1 << 20):
            pass
    get_s = time.perf_counter() - started
    mb = len(content) / 1e6
    return mb / put_s, mb / get_s


def measure(mb: int, folder: Path) -> dict[str, float]:
    """Put and read ``mb`` MB in the local store and in a SeaweedFS started here."""
    content = os.urandom(mb * 1024 * 1024)
    local_put, local_get = _mb_s(LocalBlobStore(folder / "local"), content)
    seaweed = start_seaweed(folder / "seaweed")
    try:
        s3 = open_blob_store(seaweed.config("bench/", cache_mb=0), folder)
        s3_put, s3_get = _mb_s(s3, content)
    finally:
        seaweed.stop()
    return {
        "mb": mb,
        "local_put_mb_s": round(local_put, 1),
        "s3_put_mb_s": round(s3_put, 1),
        "local_get_mb_s": round(local_get, 1),
        "s3_get_mb_s": round(s3_get, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="32 MB instead of 256 MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(32 if args.quick else 256, Path(tmp))
    print(json.dumps(result))  # i18n: not for people (machine-read result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
