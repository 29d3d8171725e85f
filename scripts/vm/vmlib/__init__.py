"""The QEMU guest test tier: build (kernel, initramfs, rootfs) and run jobs in a TCG guest.

Everything built is cached under ``.cache/vm/`` keyed by a hash of its inputs, so a repeated
run boots in seconds and a changed input (kernel version, module list, package list, Python
dependencies, build scripts) rebuilds only what depends on it.
"""
