"""iSCSI exports (control plane): target names, LUNs, CHAP and ACLs decided and kept in the catalog.

``service.ExportService`` (``st.exports``), ``models`` (Export, connection info), ``setup`` (the
``[export]`` table), ``iscsi_names``, ``secrets`` (CHAP secrets file). The target itself is made
through ``storage.host.api.HostApi``.
"""
