"""Run one Swift daemon (a replicator, the updater...) with swift.conf from a directory of ours.

Swift's servers read ``swift_dir`` from their config, but its daemons read the hash path
prefix/suffix from /etc/swift/swift.conf only; the ring's swift.conf lives in its own dir::

    daemon.py SWIFT_DIR SCRIPT [ARGS...]    # SCRIPT: a console script such as swift-object-replicator
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: daemon.py SWIFT_DIR SCRIPT [ARGS...]")
    from swift.common import utils

    utils.set_swift_dir(sys.argv[1])
    script = Path(sys.executable).parent / sys.argv[2]
    if not script.name.startswith("swift-") or not script.is_file():
        sys.exit(f"daemon.py: {sys.argv[2]!r} is not accepted; accepted: a swift-* script in {script.parent}")
    sys.argv = [str(script), *sys.argv[3:]]
    runpy.run_path(str(script), run_name="__main__")
