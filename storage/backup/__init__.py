"""The backup engine: deduplicated, compressed, optionally encrypted volume backups.

Layout: ``format`` (repository config, object and manifest encoding), ``crypto``,
``compression``, ``planner`` (pure chunk planning), ``pipeline`` (bounded threaded backup),
``restore``, ``verify``, ``gc``, ``locks``, ``cache``, ``repository`` and ``service``
(``BackupService``, reached as ``storage.Storage.backups``). The on-store format is in
docs/backup-format.md.
"""
