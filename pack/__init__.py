"""Builds what an admin installs: the dom0 RPM, the supplemental-pack ISO and the guest agent
packages. Entry point: ``python -m pack --out DIR`` (see ``pack.build``)."""
