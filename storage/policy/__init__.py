"""Snapshot and backup policies: schedules, retention, the cron-safe runner (issue 5).

Pure parts: ``retention`` (keep/prune decisions), ``schedule`` (slots and due decisions),
``durations``. I/O parts: ``lock`` (host-wide flock), ``events`` (JSON lines), ``runner``,
``service`` (``st.policies``).
"""
