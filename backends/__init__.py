"""Drivers behind small abstract base classes, found through entry points.

- ``backends.volume.base.VolumeBackend``: block volumes (file/loop, LVM).
- ``backends.object.base.ObjectStore``: containers and objects (local dir, Swift, S3).
- ``backends.export.base.ExportBackend``: iSCSI export (tgt, LIO).

Backends may import ``storage.errors`` and ``storage.units`` (leaf modules) and nothing else
from ``storage``; they never import ``api``.
"""
