"""Logs for ELK: ECS JSON lines (or text), with the ids of the operation in every line.

- ``context``: a contextvar carrying the operation's ids (``trace.id``, ``storage.volume.id``...)
- ``ecs``: the formatter (one JSON object per line, ECS field names) and the text formatter
- ``redact``: masks secrets (known values and ``password=``-like patterns) in every line
- ``setup``: ``configure(format, level, service)`` for the CLI, the API server and the agent
- ``ops``: ``@operation("volume.create")``: one line per operation with outcome and duration

Standard library only, imported lazily: ``storagectl --help`` does not import it.
See docs/logging.md.
"""
