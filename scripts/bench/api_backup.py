"""One backup through a running `storagectl serve`, as a script would ask for it: the whole command
the backup bench times beside `storagectl backup create` (scripts/bench/backup_bench.py --api).

    python3 scripts/bench/api_backup.py URL TOKEN_FILE VOLUME REPOSITORY [--interval 0.02]

POST URL/backups {"volume", "repository"} (202: the job), GET URL/jobs/<id> every --interval
seconds until the job ends, then GET URL/backups/<backup id>: printed as JSON; exit 0 when the
backup is available. Standard library only, so the client's own start-up stays small beside
the server's work; the token is read from a file, never from the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from typing import Any

ENDED = ("succeeded", "failed", "cancelled", "interrupted")


def call(url: str, token: str, method: str = "GET", body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read() or b"null")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("token_file")
    ap.add_argument("volume")
    ap.add_argument("repository")
    ap.add_argument("--interval", type=float, default=0.02)
    args = ap.parse_args()
    with open(args.token_file) as f:
        token = f.read().strip()
    base = args.url.rstrip("/")
    job = call(f"{base}/backups", token, "POST", {"volume": args.volume, "repository": args.repository})
    while job["state"] not in ENDED:
        time.sleep(args.interval)
        job = call(f"{base}/jobs/{job['id']}", token)
    if job["state"] != "succeeded":
        print(json.dumps(job), file=sys.stderr)
        return 1
    backup = call(f"{base}/backups/{job['params']['backup_id']}", token)
    print(json.dumps(backup))
    return 0 if backup.get("status") == "available" else 1


if __name__ == "__main__":
    sys.exit(main())
