#!/usr/bin/env python3
"""The guest test tier from the command line.

  scripts/vm/guestvm.py build                 build or refresh the cached images
  scripts/vm/guestvm.py run -- CMD [ARGS...]  boot a guest, run CMD in the project tree
  scripts/vm/guestvm.py pytest [ARGS...]      run pytest inside the guest (tests/guest by default)
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmlib.runner import ensure_images, run_job  # noqa: E402

PYTEST = "python -m pytest -p no:cacheprovider"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    if command == "build":
        images = ensure_images()
        print(f"kernel {images.kernel_release}\n{images.vmlinux}\n{images.initramfs}\n{images.rootfs}")
        return 0
    if command == "run":
        if args[:1] == ["--"]:
            args = args[1:]
        script = shlex.join(args)
    elif command == "pytest":
        script = f"{PYTEST} {shlex.join(args or ['-q', 'tests/guest'])}"
    else:
        print(f"unknown command {command!r}; accepted: build, run, pytest", file=sys.stderr)
        return 2
    result = run_job(script, timeout=float(os.environ.get("STORAGE_VM_TIMEOUT", "1800")), disk_sizes=(8 * 2**30, 8 * 2**30), log=lambda m: print(m, file=sys.stderr))
    sys.stdout.write(result.output)
    print(f"[guest exit {result.exit_code}, {result.seconds:.1f} s]", file=sys.stderr)
    if result.exit_code != 0:
        print(result.console[-3000:], file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
