"""Camera command latency: server-side publish → PCA9685 register written.

Runs a real mosquitto (generated credentials and ACL), the real appliance command
API on the simulated rig (servokit over the register-level PCA9685), and publishes
small relative moves from a server-side client, one at a time. Next to it, in the
same run, the broker's own publish → receive time for a plain message: the ratio
says how much the appliance adds.

    python bench/control_latency.py [--quick] [--commands N]

Last line: JSON with p50_ms, p95_ms, p99_ms, broker_p50_ms, commands.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clinicam.mqtt_config import publish_properties  # noqa: E402
from clinicam_app.broker import BrokerUser, MosquittoBroker  # noqa: E402
from clinicam_app.procs import free_port  # noqa: E402
from firmware.app import build_appliance  # noqa: E402
from firmware.config import ApplianceConfig  # noqa: E402
from firmware.hardware.sim import build_sim_rig  # noqa: E402
from tests.helpers import percentile  # noqa: E402


def client(port: int, user: str, password: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def broker_baseline(port: int, count: int) -> list[float]:
    """Publish → receive of a plain QoS 1 message through the same broker."""
    received = threading.Event()
    got: list[float] = []
    sub = client(port, "server", "server-pw")
    sub.on_message = lambda c, u, m: (got.append(time.perf_counter()), received.set())
    sub.subscribe("clinicam/bench/state", qos=1)
    pub = client(port, "server", "server-pw")
    time.sleep(0.3)
    samples = []
    for i in range(count):
        received.clear()
        start = time.perf_counter()
        pub.publish("clinicam/bench/state", str(i).encode(), qos=1)
        if not received.wait(5):
            raise RuntimeError("broker baseline message lost")
        samples.append((got[-1] - start) * 1000)
    sub.loop_stop()
    pub.loop_stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 commands (a few seconds)")
    parser.add_argument("--commands", type=int, default=2000)
    args = parser.parse_args()
    count = 300 if args.quick else max(args.commands, 1000)

    with tempfile.TemporaryDirectory(prefix="clinicam-bench-") as tmp:
        port = free_port()
        broker = MosquittoBroker(
            Path(tmp) / "broker",
            [
                BrokerUser("server", "server-pw", is_server=True),
                BrokerUser("cam-a", "cam-a-pw"),
            ],
            host="127.0.0.1",
            port=port,
        )
        broker.start()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        config = ApplianceConfig.model_validate(
            {
                "device_id": "cam-a",
                "state_dir": str(Path(tmp) / "state"),
                "mqtt": {"port": port, "username": "cam-a", "password": "cam-a-pw"},
                "sim": {"servo_seconds_per_60deg": 0.0},
                "motion": {"idle_release_s": 0},
            }
        )
        rig = build_sim_rig(config)
        written = threading.Event()
        write_times: list[float] = []

        def on_write() -> None:
            write_times.append(time.perf_counter())
            written.set()

        rig.chip.add_listener(on_write)

        async def start() -> object:
            appliance = build_appliance(config, loop=loop, hardware=(rig.pantilt, rig.camera))
            appliance.start(stream=False)
            await asyncio.wait_for(appliance.api.link.connected.wait(), 10)
            return appliance

        appliance = asyncio.run_coroutine_threadsafe(start(), loop).result(20)
        baseline = broker_baseline(port, count)
        pub = client(port, "server", "server-pw")
        time.sleep(0.5)
        samples = []
        for i in range(count):
            written.clear()
            payload = json.dumps(
                {"id": f"b{i}", "op": "ptz.relative", "pan": 1.0 if i % 2 == 0 else -1.0}
            ).encode()
            props = publish_properties(
                response_topic="clinicam/cam-a/ack", correlation=i.to_bytes(4, "big"), expiry_s=10
            )
            start_t = time.perf_counter()
            pub.publish("clinicam/cam-a/cmd", payload, qos=1, properties=props)
            if not written.wait(5):
                raise RuntimeError(f"command {i} never reached the PCA9685")
            samples.append((write_times[-1] - start_t) * 1000)
            time.sleep(0.002)  # let the one-step move finish before the next command
        pub.loop_stop()
        asyncio.run_coroutine_threadsafe(appliance.stop(), loop).result(20)  # type: ignore[attr-defined]
        loop.call_soon_threadsafe(loop.stop)
        broker.stop()

    result = {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(percentile(samples, 95), 3),
        "p99_ms": round(percentile(samples, 99), 3),
        "broker_p50_ms": round(statistics.median(baseline), 3),
        "commands": count,
    }
    print(
        f"command → register over {count} commands: p50 {result['p50_ms']} ms, "
        f"p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms; broker alone p50 "
        f"{result['broker_p50_ms']} ms (ratio {result['p50_ms'] / result['broker_p50_ms']:.1f})"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
