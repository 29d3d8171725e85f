"""A Cinder Block Storage v3 subset that python-cinderclient can drive.

Paths exist both under ``/v3/{project_id}/...`` and project-less under ``/v3/...``; the project
is accepted and ignored (one host, one tenant). Errors use Cinder's bodies (see api.errors).
"""
