"""An expert's requests while another source floods the server with bad credentials.

The server runs as its own process (``clinicam server``, SQLite in a temporary folder,
no broker: it answers "degraded" health, which these requests do not touch). An expert
signed in from 127.0.0.1 sends GET /api/session and GET /api/consultations/c1 in turn
(what the lobby and the room page fetch), REQ_RATE per second, paced; p95 latency:

1. idle: nothing else happens (the baseline, same run);
2. under abuse: an attacker process from 127.0.0.2 sends BAD_RATE wrong device tokens per
   second (alternating a device with a current token and one with an argon2 token hash
   from an older release) and BAD_RATE wrong passwords per second (real and made-up user
   names), open loop (on schedule, whatever the answers), at most IN_FLIGHT at once.

    python bench/abuse.py [--quick] [--tree PATH]

``--tree`` runs the server from another checkout (e.g. an exported older commit) for a
before/after comparison; a tree without server/device_tokens.py gets argon2 hashes only.
Last line: JSON with idle_p95_ms, under_abuse_p95_ms, ratio, bad_requests.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, CookieJar, TCPConnector

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clinicam import tomlwrite  # noqa: E402
from clinicam_app import procs  # noqa: E402
from server.auth import hash_secret  # noqa: E402
from server.device_tokens import issue_device_token  # noqa: E402

REQ_RATE = 20.0
BAD_RATE = 200.0
IN_FLIGHT = 400
EXPERT_ADDRESS = "127.0.0.1"
ATTACKER_ADDRESS = "127.0.0.2"
PASSWORD = "correct horse battery staple"
LEGACY_TOKEN = "an-argon2-hashed-token-from-an-older-release"


def write_config(folder: Path, port: int, keyed: bool) -> Path:
    state = folder / "state"
    digest = hash_secret(PASSWORD)
    devices = [{"device_id": "cam-old", "clinic": "Old", "token_hash": hash_secret(LEGACY_TOKEN)}]
    new_hash = (
        issue_device_token(state, "cam-new").token_hash if keyed else hash_secret("unused-token")
    )
    devices.append({"device_id": "cam-new", "clinic": "New", "token_hash": new_hash})
    config = {
        "log_level": "WARNING",
        "state_dir": str(state),
        "http": {"host": "127.0.0.1", "port": port, "cookie_secure": False},
        "mqtt": {"host": "127.0.0.1", "port": 1, "username": "server", "password": "x"},
        "experts": [
            {"username": u, "display_name": u.title(), "password_hash": digest}
            for u in ("alice", "bob")
        ],
        "devices": devices,
        "consultations": [
            {
                "id": "c1",
                "patient_id": "P-1",
                "appliance": "cam-old",
                "chair": "alice",
                "experts": ["alice", "bob"],
            }
        ],
    }
    path = folder / "server.toml"
    path.write_text(tomlwrite.dumps(config))
    return path


async def expert_p95(url: str, seconds: float, http: ClientSession) -> tuple[float, int]:
    """p95 ms of the expert's paced requests for ``seconds``, and how many failed."""
    paths = ("/api/session", "/api/consultations/c1")
    samples: list[float] = []
    failed = 0
    start = time.perf_counter()
    n = 0
    while (due := start + n / REQ_RATE) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        began = time.perf_counter()
        try:
            async with http.get(url + paths[n % 2]) as resp:
                await resp.read()
                failed += resp.status != 200
        except Exception:
            failed += 1
        samples.append((time.perf_counter() - began) * 1000)
        n += 1
    return statistics.quantiles(samples, n=20)[18], failed


async def attack(url: str, seconds: float) -> dict[str, Any]:
    """The attacker: BAD_RATE bad tokens and BAD_RATE bad passwords per second."""
    answers: collections.Counter[str] = collections.Counter()
    gate = asyncio.Semaphore(IN_FLIGHT)
    timeout = ClientTimeout(total=10)
    connector = TCPConnector(local_addr=(ATTACKER_ADDRESS, 0), limit=IN_FLIGHT)

    async def one(http: ClientSession, n: int) -> None:
        async with gate:
            try:
                if n % 2:
                    device = "cam-new" if n % 4 == 1 else "cam-old"
                    resp = await http.get(
                        f"{url}/api/appliances/{device}/stream/none",
                        headers={"Authorization": f"Bearer {device}.wrong-{n}"},
                    )
                    kind = "token"
                else:
                    name = ("alice", "bob", f"guess{n % 97}")[n % 3]
                    resp = await http.post(
                        f"{url}/api/login", json={"username": name, "password": f"wrong-{n}"}
                    )
                    kind = "password"
                await resp.read()
                answers[f"{kind} {resp.status}"] += 1
            except Exception as exc:
                answers[f"error {type(exc).__name__}"] += 1

    async with ClientSession(connector=connector, timeout=timeout) as http:
        tasks = []
        start = time.perf_counter()
        n = 0
        while (due := start + n / (2 * BAD_RATE)) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(http, n)))
            n += 1
        await asyncio.gather(*tasks)
    return {"sent": n, "answers": dict(sorted(answers.items()))}


def run_attacker(url: str, seconds: float) -> None:
    print(json.dumps(asyncio.run(attack(url, seconds))))


async def measure(url: str, idle_s: float, abuse_s: float) -> dict[str, Any]:
    connector = TCPConnector(local_addr=(EXPERT_ADDRESS, 0))
    jar = CookieJar(unsafe=True)
    async with ClientSession(connector=connector, cookie_jar=jar) as http:
        async with http.post(
            f"{url}/api/login", json={"username": "alice", "password": PASSWORD}
        ) as r:
            assert r.status == 200, await r.text()
        await expert_p95(url, 2.0, http)  # warm-up
        idle, idle_failed = await expert_p95(url, idle_s, http)
        attacker = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--attacker",
            url,
            "--seconds",
            str(abuse_s + 1.0),
            stdout=subprocess.PIPE,
        )
        await asyncio.sleep(1.0)  # the flood is under way before measuring
        busy, busy_failed = await expert_p95(url, abuse_s, http)
        out, _ = await attacker.communicate()
    flood = json.loads(out.decode().strip().splitlines()[-1])
    return {"idle": idle, "busy": busy, "failed": idle_failed + busy_failed, "flood": flood}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 s idle, 15 s abuse (< 60 s)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="run this checkout's server")
    parser.add_argument("--attacker", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attacker:
        run_attacker(args.attacker, args.seconds)
        return
    idle_s, abuse_s = (8.0, 15.0) if args.quick else (30.0, 60.0)
    began = time.perf_counter()
    load = os.getloadavg()[0]
    print(f"load average before the run: {load:.2f} on {os.cpu_count()} CPUs")
    tree = args.tree.resolve()
    keyed = (tree / "server" / "device_tokens.py").is_file()
    with tempfile.TemporaryDirectory(prefix="clinicam-abuse-bench-") as tmp:
        port = procs.free_port()
        config = write_config(Path(tmp), port, keyed)
        env = {**os.environ, "PYTHONPATH": str(tree)}
        server = subprocess.Popen(
            [sys.executable, "-m", "clinicam_app", "server", "--config", str(config)],
            cwd=tree,
            env=env,
        )
        try:
            procs.wait_for_port("127.0.0.1", port, 30.0, server)
            result = asyncio.run(measure(f"http://127.0.0.1:{port}", idle_s, abuse_s))
        finally:
            procs.stop(server, "server")
    flood = result["flood"]
    print(f"server from {tree} ({'keyed device tokens' if keyed else 'argon2 device tokens only'})")
    print(
        f"expert, {REQ_RATE:.0f} requests/s (GET /api/session, /api/consultations/c1): "
        f"idle p95 {result['idle']:.1f} ms ({idle_s:.0f} s); under abuse p95 "
        f"{result['busy']:.1f} ms ({abuse_s:.0f} s); expert requests failed: {result['failed']}"
    )
    print(
        f"attacker from {ATTACKER_ADDRESS}: {flood['sent']} bad requests "
        f"({BAD_RATE:.0f} tokens/s + {BAD_RATE:.0f} passwords/s), answers {flood['answers']}"
    )
    print(f"{time.perf_counter() - began:.0f} s in all; load average now {os.getloadavg()[0]:.2f}")
    print(
        json.dumps(
            {
                "idle_p95_ms": round(result["idle"], 1),
                "under_abuse_p95_ms": round(result["busy"], 1),
                "ratio": round(result["busy"] / result["idle"], 2),
                "bad_requests": flood["sent"],
            }
        )
    )


if __name__ == "__main__":
    main()
