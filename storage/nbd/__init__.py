"""Instant access to backups over NBD: a read-only export served by nbdkit's Python plugin.

``layout`` (pure: which chunks a read covers, the extents, read-ahead), ``reader`` (reads a
manifest through the backup engine: lazy verified fetches, a bounded cache, read-ahead),
``spec`` (the 0600 file the plugin is configured by), ``plugin`` (the script nbdkit runs),
``server`` (the nbdkit process) and ``service`` (what ``storagectl backup serve`` calls).

Live restore (``backup restore --live``): ``bitmap`` (the persisted restored-chunk bitmap and the
pure "which chunks does a request cover"), ``live`` (the data path: on-demand fetch, writes marked
first, the background copy), ``live_plugin`` (the read-write nbdkit script) and ``live_service``
(create the volume, serve it, finish or fail it, resume).
"""
