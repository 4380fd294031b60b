"""First-boot provisioning (``clinicam.toml`` on the boot partition) and the on-site doctor.

The entry points are :mod:`firmware.provision` and :mod:`firmware.doctor`; the modules
here are their parts, each about one thing: the file's schema, PEM material,
NetworkManager keyfiles, system files, the technician's report and the doctor's checks.
"""
