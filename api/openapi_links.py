"""OpenAPI links: what a client (or schemathesis' stateful phase) can call with what a response returned.

``add_links(schema)`` is a pure function over the generated document: each entry of ``LINKS`` names
a source operation and status by path and method, and targets by path and method; operation ids are
looked up in the document, so FastAPI's generated ids are never spelled here.
"""

from __future__ import annotations

import copy
from typing import Any

VOLUME = {"ref": "$response.body#/id"}
SNAPSHOT = {"ref": "$response.body#/id"}
POLICY = {"ref": "$response.body#/id"}
CONTAINER = {"store": "$request.path.store", "container": "$response.body#/name"}
OBJECT = {"store": "$request.path.store", "container": "$request.path.container", "name": "$response.body#/name"}
JOB = {"job_id": "$response.body#/id"}
FIRST_BACKUP = {"backup_id": "$response.body#/0/id"}

_VOLUME_TARGETS = [
    ("GetVolume", "/volumes/{ref}", "get", VOLUME),
    ("UpdateVolume", "/volumes/{ref}", "patch", VOLUME),
    ("ExtendVolume", "/volumes/{ref}/extend", "post", VOLUME),
    ("CloneVolume", "/volumes/{ref}/clone", "post", VOLUME),
    ("RevertVolume", "/volumes/{ref}/revert", "post", VOLUME),
    ("DeleteVolume", "/volumes/{ref}", "delete", VOLUME),
]
_JOB_TARGETS = [("GetJob", "/jobs/{job_id}", "get", JOB), ("CancelJob", "/jobs/{job_id}/cancel", "post", JOB)]

# (source path, method, status) -> [(link name, target path, method, parameters)]
LINKS: dict[tuple[str, str, str], list[tuple[str, str, str, dict[str, str]]]] = {
    ("/volumes", "post", "201"): _VOLUME_TARGETS,
    ("/volumes/{ref}/clone", "post", "201"): _VOLUME_TARGETS,
    ("/snapshots", "post", "201"): [
        ("GetSnapshot", "/snapshots/{ref}", "get", SNAPSHOT),
        ("UpdateSnapshot", "/snapshots/{ref}", "patch", SNAPSHOT),
        ("DeleteSnapshot", "/snapshots/{ref}", "delete", SNAPSHOT),
    ],
    ("/policies", "post", "201"): [
        ("GetPolicy", "/policies/{ref}", "get", POLICY),
        ("UpdatePolicy", "/policies/{ref}", "patch", POLICY),
        ("PolicyHistory", "/policies/{ref}/history", "get", POLICY),
        ("RunPolicy", "/policies/{ref}/run", "post", POLICY),
        ("DeletePolicy", "/policies/{ref}", "delete", POLICY),
    ],
    ("/backups", "post", "202"): [
        *_JOB_TARGETS,
        ("GetBackup", "/backups/{backup_id}", "get", {"backup_id": "$response.body#/params/backup_id"}),
    ],
    ("/backups/{backup_id}/restore", "post", "202"): _JOB_TARGETS,
    ("/backups/{backup_id}/verify", "post", "202"): _JOB_TARGETS,
    ("/backups/gc", "post", "202"): _JOB_TARGETS,
    ("/policies/{ref}/run", "post", "202"): _JOB_TARGETS,
    ("/object-stores/{store}/containers/{container}", "put", "201"): [
        ("StatContainer", "/object-stores/{store}/containers/{container}", "get", CONTAINER),
        ("ListObjects", "/object-stores/{store}/containers/{container}/objects", "get", CONTAINER),
        ("UploadObject", "/object-stores/{store}/containers/{container}/objects/{name}", "put", CONTAINER),
        ("DeleteContainer", "/object-stores/{store}/containers/{container}", "delete", CONTAINER),
    ],
    ("/backups", "get", "200"): [
        ("GetBackup", "/backups/{backup_id}", "get", FIRST_BACKUP),
        ("VerifyBackup", "/backups/{backup_id}/verify", "post", FIRST_BACKUP),
        ("RestoreBackup", "/backups/{backup_id}/restore", "post", FIRST_BACKUP),
        ("ServeBackup", "/backups/{backup_id}/serve", "post", FIRST_BACKUP),
        ("DeleteBackup", "/backups/{backup_id}", "delete", FIRST_BACKUP),
    ],
    ("/backups/{backup_id}/serve", "post", "201"): [
        ("StopServe", "/backups/serves/{served_id}", "delete", {"served_id": "$response.body#/id"}),
    ],
    ("/object-stores/{store}/containers", "get", "200"): [
        ("FirstContainer", "/object-stores/{store}/containers/{container}", "get",
         {"store": "$request.path.store", "container": "$response.body#/0/name"}),
    ],
    ("/object-stores/{store}/containers/{container}/objects/{name}", "put", "201"): [
        ("GetObject", "/object-stores/{store}/containers/{container}/objects/{name}", "get", OBJECT),
        ("HeadObject", "/object-stores/{store}/containers/{container}/objects/{name}", "head", OBJECT),
        ("DeleteObject", "/object-stores/{store}/containers/{container}/objects/{name}", "delete", OBJECT),
    ],
}


def add_links(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with the ``LINKS`` whose source and target operations it has."""
    out = copy.deepcopy(schema)
    paths = out.get("paths", {})
    for (path, method, status), targets in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        for name, target_path, target_method, parameters in targets:
            op_id = paths.get(target_path, {}).get(target_method, {}).get("operationId")
            if op_id:
                response.setdefault("links", {})[name] = {"operationId": op_id, "parameters": dict(parameters)}
    return out
