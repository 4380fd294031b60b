"""The simulated rig: a fake I2C bus with a PCA9685, two servos and a virtual camera.

The real servokit driver runs on top of the fake bus; the camera looks wherever the
simulated servos physically are, so the whole chain driver → registers → servo →
picture is exercised.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware.config import ApplianceConfig
from firmware.hardware.camera_sim import VirtualCamera
from firmware.hardware.pantilt import ServoPanTilt
from firmware.hardware.pca9685_sim import SimI2CBus, SimPCA9685
from firmware.hardware.scene import generate_scene
from firmware.hardware.servo_sim import SimServo

SCENE_MARGIN_DEG = 10.0


@dataclass
class SimRig:
    """Everything a simulated appliance is made of."""

    bus: SimI2CBus
    chip: SimPCA9685
    pan_servo: SimServo
    tilt_servo: SimServo
    pantilt: ServoPanTilt
    camera: VirtualCamera

    def close(self) -> None:
        self.chip.close()


def build_sim_rig(config: ApplianceConfig) -> SimRig:
    """Assemble the simulated rig described by ``config``."""
    pt, cam, sim = config.pantilt, config.camera, config.sim
    bus = SimI2CBus()
    chip = SimPCA9685(register_file=sim.register_file)
    bus.attach(pt.i2c_address, chip)
    servos = [
        SimServo(chip, axis.channel, seconds_per_60deg=sim.servo_seconds_per_60deg)
        for axis in (pt.pan, pt.tilt)
    ]
    pantilt = ServoPanTilt(pt, i2c=bus)
    pan_servo, tilt_servo = servos

    def pointing() -> tuple[float, float]:
        # The rig is built straight: servo 90° looks at the scene's centre.
        return pan_servo.angle - 90.0, tilt_servo.angle - 90.0

    width_deg = 2 * max(-pt.pan.min_deg, pt.pan.max_deg) + cam.hfov_deg + SCENE_MARGIN_DEG
    height_deg = 2 * max(-pt.tilt.min_deg, pt.tilt.max_deg) + cam.vfov_deg + SCENE_MARGIN_DEG
    scene = generate_scene(width_deg, height_deg, sim.scene_px_per_deg, sim.scene_seed)
    camera = VirtualCamera(
        scene,
        sim.scene_px_per_deg,
        pointing,
        cam,
        subject_distance_m=sim.subject_distance_m,
        stamp_time=sim.stamp_time,
        lighting=sim.casts()[sim.lighting],
    )
    if sim.colour_card is not None:
        x, y, width = sim.colour_card
        camera.hold_card((x, y), width)
    return SimRig(bus, chip, pan_servo, tilt_servo, pantilt, camera)
