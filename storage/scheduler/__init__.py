"""Volume placement like Cinder's filter scheduler: pure filters, a weigher, and the reasons.

``schedule(candidates, request)`` filters every candidate pool (``filters.FILTERS``), weighs the
survivors (``weighers.WEIGHERS``, most free capacity by default) and returns a ``Decision`` naming
the chosen host#pool and, for every candidate, the filter that refused it and why or its weight.
``place`` raises ``storage.errors.NoValidHost`` when nothing fits. Gathering candidates is I/O and
lives apart (``gather.local_candidates`` for this host's pools), so several hosts can feed it later.
"""

from storage.scheduler.decide import explanation_rows, place, schedule
from storage.scheduler.hints import parse_requirements, validate_hints
from storage.scheduler.models import Candidate, Decision, Hints, PlacementRequest, Verdict
from storage.scheduler.weighers import DEFAULT_WEIGHER, WEIGHERS

__all__ = [
    "DEFAULT_WEIGHER", "WEIGHERS", "Candidate", "Decision", "Hints", "PlacementRequest", "Verdict",
    "explanation_rows", "parse_requirements", "place", "schedule", "validate_hints",
]
