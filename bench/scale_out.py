"""Scale-out: a web front and two media workers on this machine, consultations added one by one.

Real processes: redis-server, ``clinicam server`` as the web front with ``[cluster]``,
two ``clinicam media-worker`` processes, and one simulated appliance per consultation
(``clinicam appliance``, its stream sent through the front to the worker its appliance
is pinned to). Each consultation gets one lightweight expert (tests/expert_client.py:
aiortc, in this process) that sends a synthetic webcam and decodes every composite
frame. At each step the bench measures every expert's fps and the workers' CPU.
Then it SIGKILLs the worker of the first consultation and measures how long until its
expert, reconnecting through the front as the room page does, decodes video again.
Last, the object store figures of bench/blob_put.py (the local store is the baseline).

    python bench/scale_out.py [--quick] [--consultations N] [--seconds S]

Everything shares this machine's cores: the appliances and the experts (other machines
in a clinic network) take much of them, so ``consultations`` is what this box holds
with all of it on board, and ``cpu_per_expert`` (the workers' CPU, % of one core, per
connected expert at the largest step every expert held, else the first) is the figure
the capacity model in docs/scale-out.md builds on. Last line: JSON with workers,
consultations (the most at which every expert held >= 25 fps), repin_s, cpu_per_expert,
s3_put_mb_s, local_put_mb_s, and the steps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiohttp  # noqa: E402
from blob_put import measure as blob_figures  # noqa: E402

from clinicam.ice import restrict_ice_to_loopback  # noqa: E402
from clinicam.tomlwrite import dumps  # noqa: E402
from tests.cluster.conftest import RedisServer  # noqa: E402
from tests.cluster.site import HOST, NAMES, PASSWORD, Process, Site  # noqa: E402
from tests.expert_client import ExpertClient  # noqa: E402
from tests.helpers import free_port  # noqa: E402

MIN_FPS = 25.0
# As bench/capacity.py runs it: 720p30 from each appliance, composites up to 30 fps.
SETTINGS = {
    "CLINICAM_APPLIANCE__CAMERA__WIDTH": "1280",
    "CLINICAM_APPLIANCE__CAMERA__HEIGHT": "720",
    "CLINICAM_APPLIANCE__CAMERA__FPS": "30",
    "CLINICAM_APPLIANCE__CAMERA__ADAPTIVE": "false",  # a loopback link: stay at the top
    "CLINICAM_SERVER__LIVE__FPS": "30",
}
TICKS = os.sysconf("SC_CLK_TCK")


def process_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15])


def streaming(site: Site) -> int:
    """Appliances streaming to any worker (each worker's /healthz)."""
    count = 0
    for worker in site.workers:
        if worker.proc is None or worker.proc.poll() is not None:
            continue
        try:
            with urllib.request.urlopen(worker.base + "/healthz", timeout=5) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:  # 503: no broker here (none is needed)
            body = exc.read()
        except OSError:
            continue
        appliances = json.loads(body)["appliances"]
        count += sum(1 for a in appliances.values() if a["streaming"])
    return count


def appliance(site: Site, n: int, folder: Path) -> Process:
    """The simulated appliance of consultation ``n``, streaming through the front."""
    device = f"cam-{n}"
    config = folder / f"{device}.toml"
    config.write_text(
        dumps(
            {
                "device_id": device,
                "backend": "sim",
                "state_dir": str(folder / device),
                "log_level": "WARNING",
                "server": {"url": site.front.base, "token": site.tokens[device]},
                "mqtt": {"host": HOST, "port": 1, "username": device, "password": "x"},
                "ice": {"loopback_only": True},
                "sim": {"register_file": str(folder / f"pca9685-{device}.bin")},
            }
        )
    )
    port = free_port()  # nothing listens there: launch() only, never wait_listening()
    return Process(device, ["appliance", "--config", str(config)], port, folder / f"{device}.log")


async def until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


async def step(site: Site, experts: list[ExpertClient], seconds: float) -> dict[str, Any]:
    pids = [w.proc.pid for w in site.workers if w.proc is not None]
    ticks0, start = sum(process_ticks(p) for p in pids), time.monotonic()
    await asyncio.sleep(seconds)
    ticks1, end = sum(process_ticks(p) for p in pids), time.monotonic()
    workers_cpu = 100 * (ticks1 - ticks0) / TICKS / (end - start)
    fps = [round(e.fps(start, end), 1) for e in experts]
    return {
        "consultations": len(experts),
        "fps": fps,
        "workers_cpu_pct": round(workers_cpu, 1),
        "cpu_per_expert": round(workers_cpu / len(experts), 1),
        "all_at_min_fps": min(fps) >= MIN_FPS,
    }


async def repin(site: Site, expert: ExpertClient, leases_url: str) -> float:
    """SIGKILL the first consultation's worker; seconds until its expert decodes again."""
    import redis

    client = redis.Redis.from_url(leases_url, decode_responses=True)
    holder = client.get("site:lease:cam-1")
    client.close()
    assert holder, "cam-1 is pinned"
    site.worker(str(holder)).kill()
    killed = time.monotonic()
    while True:
        if expert.pc is not None:
            await expert.pc.close()
            expert.pc = None
        try:
            await expert.open_socket("c1")
            if (await expert.offer("c1")).status == 200:
                break
        except aiohttp.ClientError:  # the front: 503 until the lease moved
            pass
        await asyncio.sleep(0.25)
        if time.monotonic() - killed > 60:
            raise RuntimeError("the expert did not get back within 60 s")
    before = len(expert.arrivals)
    await expert.until_frames(before + 1, timeout_s=60)
    return round(expert.arrivals[before] - killed, 2)


async def run(count: int, seconds: float, blob_mb: int, folder: Path) -> dict[str, Any]:
    restrict_ice_to_loopback()
    for name, value in SETTINGS.items():  # the processes started below inherit them
        os.environ.setdefault(name, value)  # (set one yourself to measure another setting)
    redis_server = RedisServer(folder)
    redis_server.start()
    (folder / "site").mkdir()
    site = Site(folder / "site", redis_server.url, workers=2, appliances=count)
    appliances: list[Process] = []
    experts: list[ExpertClient] = []
    steps = []
    try:
        site.start()
        for n in range(1, count + 1):
            appliances.append(appliance(site, n, folder))
            appliances[-1].launch()
            await until(lambda n=n: streaming(site) >= n, 90, f"appliance {n} streaming")
            expert = ExpertClient(site.front.base, NAMES[n - 1], PASSWORD)
            experts.append(expert)
            await expert.login()
            await expert.join(f"c{n}")
            await expert.until_frames(10, timeout_s=60)
            steps.append(await step(site, experts, seconds))
            print(json.dumps(steps[-1]), flush=True)  # i18n: not for people (bench output)
        repin_s = await repin(site, experts[0], redis_server.url)
    finally:
        for expert in experts:
            await expert.close()
        for process in appliances:
            process.stop()
        site.stop()
        redis_server.stop()
    held = [s["consultations"] for s in steps if s["all_at_min_fps"]]
    # The CPU per expert of the largest step every expert held (the first step if none):
    # past it the machine is saturated and the workers' share per expert means nothing.
    healthy = steps[max(held, default=1) - 1]
    blobs = blob_figures(blob_mb, folder / "blobs")
    return {
        "workers": 2,
        "consultations": max(held, default=0),
        "repin_s": repin_s,
        "cpu_per_expert": healthy["cpu_per_expert"],
        "s3_put_mb_s": blobs["s3_put_mb_s"],
        "local_put_mb_s": blobs["local_put_mb_s"],
        "steps": steps,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="two consultations, 2 s each")
    parser.add_argument("--consultations", type=int, default=3, help="how many, at most 6")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured per step")
    parser.add_argument("--keep", type=Path, help="work (and leave the logs) in this folder")
    args = parser.parse_args()
    count = 2 if args.quick else max(1, min(6, args.consultations))
    seconds = 2.0 if args.quick else args.seconds
    blob_mb = 4 if args.quick else 64
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        result = asyncio.run(run(count, seconds, blob_mb, args.keep))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(run(count, seconds, blob_mb, Path(tmp)))
    print(json.dumps(result))  # i18n: not for people (machine-read result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
