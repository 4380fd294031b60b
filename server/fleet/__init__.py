"""Appliance fleet: the release store and server-triggered appliance updates (D5)."""
