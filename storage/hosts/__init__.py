"""Hosts: the services table, heartbeats, up/down/disabled, placement candidates (control plane).

``state`` holds the pure decisions, ``service.HostService`` (``st.hosts``) reads and writes the
catalog, ``agent`` is the ``storagectl agent`` loop that heartbeats for one host.
"""
