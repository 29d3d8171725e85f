"""The decision: filter every candidate, weigh the survivors, choose the heaviest.

``schedule`` never raises for "nothing fits": it returns a ``Decision`` whose ``chosen`` is None
and whose verdicts say why. ``place`` raises ``NoValidHost`` with that explanation instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.errors import InvalidInput, NoValidHost
from storage.scheduler.filters import first_refusal
from storage.scheduler.models import Candidate, Decision, PlacementRequest, Verdict
from storage.scheduler.weighers import DEFAULT_WEIGHER, WEIGHERS, normalise, shown
from storage.units import format_size

MAX_LISTED = 200  # refusals spelled out in an error message; the details carry every one


def schedule(candidates: Sequence[Candidate], request: PlacementRequest, weigher: str = DEFAULT_WEIGHER) -> Decision:
    if weigher not in WEIGHERS:
        raise InvalidInput(f"weigher {weigher!r} is not known; accepted: {', '.join(sorted(WEIGHERS))}", field="weigher")
    if isinstance(request.size_bytes, bool) or not isinstance(request.size_bytes, int) or request.size_bytes <= 0:
        raise InvalidInput(f"size {request.size_bytes!r} is not accepted; accepted: a whole number of bytes above 0", field="size")
    seen: set[tuple[str, str]] = set()
    refused: list[Verdict] = []
    survivors: list[Candidate] = []
    for c in candidates:
        if (c.host, c.pool) in seen:
            raise InvalidInput(f"candidate {c.name!r} is listed twice; each host#pool once", field="candidates")
        seen.add((c.host, c.pool))
        refusal = first_refusal(c, request)
        if refusal is None:
            survivors.append(c)
        else:
            refused.append(Verdict(c.host, c.pool, refused_by=refusal[0], reason=refusal[1]))
    weigh = WEIGHERS[weigher]
    metrics = [weigh(c, request) for c in survivors]
    weights = normalise(metrics)
    order = sorted(range(len(survivors)), key=lambda i: (-metrics[i], survivors[i].host, survivors[i].pool))
    ranked = [
        Verdict(survivors[i].host, survivors[i].pool, metric=shown(weigher, metrics[i]), weight=weights[i], rank=rank)
        for rank, i in enumerate(order, start=1)
    ]
    return Decision(request=request, weigher=weigher, verdicts=tuple(ranked + refused))


def no_valid_host_message(decision: Decision) -> str:
    r = decision.request
    what = f"a volume of {format_size(r.size_bytes)}"
    if not decision.verdicts:
        return f"no pool can take {what}: there are no candidate pools"
    lines = [f"{v.name}: {v.refused_by}: {v.reason}" for v in decision.refused[:MAX_LISTED]]
    more = len(decision.refused) - MAX_LISTED
    tail = f"; and {more} more (see details.explanation)" if more > 0 else ""
    return f"no pool can take {what}; refused: " + "; ".join(lines) + tail


def place(candidates: Sequence[Candidate], request: PlacementRequest, weigher: str = DEFAULT_WEIGHER) -> Decision:
    """``schedule``, raising ``NoValidHost`` (every refusal in its message and details) when none fits."""
    decision = schedule(candidates, request, weigher)
    if decision.chosen is None:
        raise NoValidHost(no_valid_host_message(decision), explanation=decision.to_dict())
    return decision


def explanation_rows(decision: Decision) -> list[list[str]]:
    """The decision as table rows: Host, Pool, Result, Filter / weight, Why / metric."""
    rows = []
    for v in decision.verdicts:
        if v.refused_by is not None:
            rows.append([v.host, v.pool, "refused", v.refused_by, v.reason or ""])
        else:
            result = "chosen" if v.rank == 1 else f"rank {v.rank}"
            metric = format_size(v.metric or 0) if decision.weigher == "free" else f"{(v.metric or 0):.2%}"
            rows.append([v.host, v.pool, result, f"weight {v.weight:.3f}", f"{decision.weigher}: {metric}"])
    return rows


EXPLANATION_COLUMNS = ["Host", "Pool", "Result", "Filter / weight", "Why / metric"]
