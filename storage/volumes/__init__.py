"""Volumes, snapshots and pools (control plane): decide, compare-and-set in the catalog, record.

``service.VolumeService`` (``st.volumes``), ``snapshots.SnapshotService`` (``st.snapshots``),
``pools.PoolService`` (``st.pools``), ``check`` (``st.check()``). Device work goes through
``storage.host.api.HostApi``.
"""
