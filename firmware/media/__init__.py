"""The appliance's live stream: encoder, WebRTC track and the uplink to the server."""

from __future__ import annotations
