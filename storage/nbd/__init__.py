"""Instant access to backups over NBD: a read-only export served by nbdkit's Python plugin.

``layout`` (pure: which chunks a read covers, the extents, read-ahead), ``reader`` (reads a
manifest through the backup engine: lazy verified fetches, a bounded cache, read-ahead),
``spec`` (the 0600 file the plugin is configured by), ``plugin`` (the script nbdkit runs),
``server`` (the nbdkit process) and ``service`` (what ``storagectl backup serve`` calls).
"""
