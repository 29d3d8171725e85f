"""The host side of the seam: what touches this host's devices.

``api.HostApi`` is the narrow interface the control plane calls (volume lifecycle, attach,
export target, local reads/writes); ``local.LocalHost`` implements it in process over the drivers.
``attach`` (client-side os-brick attach) and ``inventory`` (lsblk/losetup/LVM listing) run here too.
"""
