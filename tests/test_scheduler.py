"""The scheduler's pure decision, table-tested: candidates + request -> choice or NoValidHost, and why."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pytest

from storage.errors import InsufficientCapacity, InvalidInput, NoValidHost
from storage.scheduler import Candidate, Hints, PlacementRequest, explanation_rows, place, schedule
from storage.scheduler.hints import CAPABILITIES, parse_requirements, validate_hints

GiB = 1024**3
MiB = 1024**2
FILE_CAPS = {"thin": True, "snapshots": True, "clone": True, "revert": True, "online_extend": True,
             "changed_ranges": True, "copy_method": "reflink", "size_granularity": MiB}
THICK_CAPS = {**FILE_CAPS, "thin": False, "changed_ranges": False, "copy_method": "copy", "size_granularity": 4 * MiB}


def c(host: str, pool: str = "p", *, total: int = 100, free: int | None = None, prov: int = 0, ratio: float = 1.0,
      thick: bool = False, **kw: Any) -> Candidate:
    """A candidate with sizes in GiB; thin (file-like) unless thick."""
    caps = dict(THICK_CAPS if thick else FILE_CAPS)
    caps.update(kw.pop("caps", {}))
    return Candidate(host=host, pool=pool, driver="lvm" if thick else "file", total_bytes=total * GiB,
                     free_bytes=(total - prov if free is None else free) * GiB, provisioned_bytes=prov * GiB,
                     overcommit_ratio=ratio, capabilities=caps, **kw)


def req(size_gib: float = 10, *, pool: str | None = None, **hints: Any) -> PlacementRequest:
    return PlacementRequest(int(size_gib * GiB), Hints(**hints), pool=pool)


# (id, candidates, request, weigher, expected "host#pool" or None, {"host#pool": refusing filter (+ reason part)})
ROWS: list[tuple[str, list[Candidate], PlacementRequest, str, str | None, dict[str, tuple[str, str]]]] = [
    ("one pool fits: chosen", [c("h1")], req(), "free", "h1#p", {}),
    ("most free wins", [c("h1", prov=50), c("h2", prov=10), c("h3", prov=90)], req(), "free", "h2#p", {}),
    ("tie broken by host name", [c("b"), c("a"), c("c")], req(), "free", "a#p", {}),
    ("tie on one host broken by pool name", [c("h", "zz"), c("h", "aa")], req(), "free", "h#aa", {}),
    ("thin overcommit lets a pool take more than its disk",
     [c("h1", total=100, prov=150, free=5, ratio=2.0)], req(40), "free", "h1#p", {}),
    ("thin overcommit exhausted",
     [c("h1", total=100, prov=190, ratio=2.0)], req(20), "free", None,
     {"h1#p": ("capacity", "10G provisionable (thin: total 100G x overcommit 2 - 190G provisioned)")}),
    ("thin: exact fit passes", [c("h1", total=100, prov=90)], req(10), "free", "h1#p", {}),
    ("thin: one MiB over refuses", [c("h1", total=100, prov=90)], req(10 + 1 / 1024), "free", None,
     {"h1#p": ("capacity", "needs 10738466816 bytes, 10737418240 bytes provisionable")}),
    ("thick by free bytes, not provisioned",
     [c("h1", total=100, prov=10, free=5, thick=True)], req(10), "free", None,
     {"h1#p": ("capacity", "5.0G free (thick)")}),
    ("thick ignores overcommit", [c("h1", total=100, prov=0, free=8, ratio=20.0, thick=True)], req(10), "free", None,
     {"h1#p": ("capacity", "free (thick)")}),
    ("thick fits in free", [c("h1", total=100, prov=95, free=20, thick=True)], req(10), "free", "h1#p", {}),
    ("size rounded up to the pool's granularity before the capacity check",
     [c("h1", total=100, free=10, thick=True)], PlacementRequest(10 * GiB - 1), "free", "h1#p", {}),
    ("granularity pushes over", [Candidate("h1", "p", total_bytes=8 * MiB, free_bytes=4 * MiB,
                                           capabilities={"thin": False, "size_granularity": 4 * MiB})],
     PlacementRequest(4 * MiB + 1), "free", None, {"h1#p": ("capacity", "needs 8.0M")}),
    ("a full host goes, the next takes it", [c("full", prov=99), c("roomy", prov=50)], req(5), "free", "roomy#p",
     {"full#p": ("capacity", "needs 5.0G")}),
    ("thin room counts virtual space over free space",
     [c("thin", total=100, prov=100, free=90, ratio=3.0), c("thick", total=100, free=95, thick=True)],
     req(10), "free", "thin#p", {}),
    ("down host refused", [c("h1", up=False), c("h2", prov=90)], req(), "free", "h2#p",
     {"h1#p": ("host_state", "host 'h1' is down")}),
    ("disabled host refused with its reason", [c("h1", disabled=True, disabled_reason="maintenance"), c("h2", prov=80)],
     req(), "free", "h2#p", {"h1#p": ("host_state", "disabled (maintenance)")}),
    ("pool that could not report refused", [c("h1", error="vgs failed: no VG vg0"), c("h2", prov=80)], req(),
     "free", "h2#p", {"h1#p": ("host_state", "vgs failed: no VG vg0")}),
    ("down wins over capacity in the explanation", [c("h1", up=False, prov=100)], req(), "free", None,
     {"h1#p": ("host_state", "down")}),
    ("zone asked: only that zone", [c("h1", availability_zone="az1"), c("h2", availability_zone="az2", prov=90)],
     req(availability_zone="az2"), "free", "h2#p", {"h1#p": ("availability_zone", "in zone 'az1'")}),
    ("zone asked nobody has", [c("h1"), c("h2")], req(availability_zone="mars"), "free", None,
     {"h1#p": ("availability_zone", "'mars'"), "h2#p": ("availability_zone", "'mars'")}),
    ("no zone asked: any zone", [c("h1", availability_zone="az1"), c("h2", availability_zone="az2", prov=1)],
     req(), "free", "h1#p", {}),
    ("labels must all match", [c("h1", labels={"tier": "gold"}), c("h2", labels={"tier": "gold", "ssd": "yes"}, prov=90)],
     req(labels={"tier": "gold", "ssd": "yes"}), "free", "h2#p", {"h1#p": ("labels", "lack ssd=yes")}),
    ("label value differs", [c("h1", labels={"tier": "silver"})], req(labels={"tier": "gold"}), "free", None,
     {"h1#p": ("labels", "tier=gold")}),
    ("capability thin required: thick refused", [c("lvm", thick=True), c("file", prov=99)], req(1, capabilities={"thin": True}),
     "free", "file#p", {"lvm#p": ("capabilities", "thin=true (pool: false)")}),
    ("reflink derived from copy_method", [c("ext4", caps={"copy_method": "copy"}), c("xfs", prov=80)],
     req(capabilities={"reflink": True}), "free", "xfs#p", {"ext4#p": ("capabilities", "reflink=true (pool: false)")}),
    ("capability not reported", [Candidate("h1", "p", total_bytes=GiB, free_bytes=GiB)],
     req(0.5, capabilities={"online_extend": True}), "free", None, {"h1#p": ("capabilities", "not reported")}),
    ("string capability", [c("a", thick=True, free=50), c("b", prov=60)], req(capabilities={"copy_method": "copy"}),
     "free", "a#p", {"b#p": ("capabilities", "copy_method=copy (pool: reflink)")}),
    ("explicit pool: the others are refused by 'requested'", [c("h", "big"), c("h", "small", prov=90)],
     req(pool="small"), "free", "h#small", {"h#big": ("requested", "names pool 'small'")}),
    ("explicit pool that is full: refused by capacity", [c("h", "big"), c("h", "small", prov=95)],
     req(pool="small"), "free", None, {"h#small": ("capacity", "needs 10G"), "h#big": ("requested", "'small'")}),
    ("explicit host", [c("h1"), c("h2", prov=90)], req(host="h2"), "free", "h2#p",
     {"h1#p": ("requested", "names host 'h2'")}),
    ("first refusing filter is the one recorded (zone before capacity)",
     [c("h1", availability_zone="x", prov=100)], req(availability_zone="y"), "free", None,
     {"h1#p": ("availability_zone", "'x'")}),
    ("provisioned_ratio: least provisioned after placing wins over most free",
     [c("big", total=1000, prov=500), c("small", total=100, prov=10)], req(), "provisioned_ratio", "small#p", {}),
    ("provisioned_ratio: free would pick the big one", [c("big", total=1000, prov=500), c("small", total=100, prov=10)],
     req(), "free", "big#p", {}),
    ("provisioned_ratio exact tie broken by name", [c("y", total=200, prov=90), c("x", total=100, prov=40)],
     req(10), "provisioned_ratio", "x#p", {}),
    ("no candidates at all", [], req(), "free", None, {}),
    ("the pool's own provisionable figure wins over the formula",
     [Candidate("h1", "p", total_bytes=100 * GiB, free_bytes=90 * GiB, provisioned_bytes=120 * GiB, provisionable=30 * GiB,
                capabilities={"thin": True})], req(20), "free", "h1#p", {}),
    ("the pool's own figure refuses too, and the reason adds up",
     [Candidate("h1", "p", total_bytes=100 * GiB, free_bytes=90 * GiB, provisioned_bytes=120 * GiB, provisionable=5 * GiB,
                capabilities={"thin": True})], req(20), "free", None,
     {"h1#p": ("capacity", "5.0G provisionable (thin: total 100G x overcommit 1 - 95G provisioned)")}),
    ("zero-size pool refused", [c("h1", total=0, free=0)], req(1), "free", None,
     {"h1#p": ("capacity", "no total capacity")}),
]


@pytest.mark.parametrize(("candidates", "request_", "weigher", "expected", "refusals"),
                         [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_schedule_table(candidates: list[Candidate], request_: PlacementRequest, weigher: str, expected: str | None,
                        refusals: dict[str, tuple[str, str]]) -> None:
    decision = schedule(candidates, request_, weigher)
    chosen = decision.chosen
    assert (chosen.name if chosen else None) == expected
    refused = {v.name: v for v in decision.refused}
    assert set(refused) == set(refusals), refused
    for name, (filter_name, reason_part) in refusals.items():
        assert refused[name].refused_by == filter_name
        assert reason_part in (refused[name].reason or ""), refused[name].reason
    # every candidate is explained exactly once: refused, or weighed with a rank
    assert sorted(v.name for v in decision.verdicts) == sorted(x.name for x in candidates)
    survivors = [v for v in decision.verdicts if v.refused_by is None]
    assert [v.rank for v in survivors] == list(range(1, len(survivors) + 1))
    assert all(v.weight is not None and 0.0 <= v.weight <= 1.0 for v in survivors)
    if survivors:
        assert survivors[0].weight == max(v.weight or 0 for v in survivors)
    if expected is None:
        with pytest.raises(NoValidHost) as err:
            place(candidates, request_, weigher)
        for name, (filter_name, reason_part) in refusals.items():
            assert f"{name}: {filter_name}: " in err.value.message and reason_part in err.value.message
        assert err.value.details["explanation"]["chosen"] is None
        assert len(err.value.details["explanation"]["candidates"]) == len(candidates)
    else:
        assert place(candidates, request_, weigher).chosen == chosen


def test_decision_is_deterministic_whatever_the_input_order() -> None:
    cands = [c(f"h{i:02d}", prov=(i * 7) % 5) for i in range(20)]
    first = schedule(cands, req(1))
    assert schedule(list(reversed(cands)), req(1)).chosen == first.chosen
    assert first.chosen is not None and first.chosen.name == "h00#p"  # prov 0, name sorts first among ties


def test_weights_are_normalised_metrics() -> None:
    d = schedule([c("a", prov=0), c("b", prov=45), c("c", prov=90)], req(10))
    by = {v.host: v for v in d.verdicts}
    assert (by["a"].weight, by["b"].weight, by["c"].weight) == (1.0, 0.5, 0.0)
    assert by["a"].metric == 100 * GiB and by["c"].metric == 10 * GiB


def test_decision_to_dict_and_rows() -> None:
    d = schedule([c("a"), c("b", up=False)], req(1, availability_zone="nova"))
    out = d.to_dict()
    assert out["chosen"] == {"host": "a", "pool": "p"} and out["weigher"] == "free"
    assert out["request"]["availability_zone"] == "nova" and out["request"]["size_bytes"] == GiB
    assert out["candidates"][1] == {"host": "b", "pool": "p", "refused_by": "host_state", "reason": "host 'b' is down"}
    rows = explanation_rows(d)
    assert rows[0][:3] == ["a", "p", "chosen"] and rows[1][2:4] == ["refused", "host_state"]


def test_no_valid_host_is_insufficient_capacity_with_its_own_code() -> None:
    with pytest.raises(InsufficientCapacity) as err:
        place([c("h1", prov=100)], req(1))
    assert err.value.code == "no_valid_host" and err.value.exit_code == 6 and err.value.http_status == 507
    assert "no pool can take a volume of 1.0G; refused: h1#p: capacity" in err.value.message


def test_no_valid_host_message_is_bounded() -> None:
    cands = [c(f"h{i:04d}", up=False) for i in range(500)]
    with pytest.raises(NoValidHost) as err:
        place(cands, req(1))
    assert "and 300 more (see details.explanation)" in err.value.message
    assert len(err.value.details["explanation"]["candidates"]) == 500


@pytest.mark.parametrize(("request_", "weigher", "match"), [
    (PlacementRequest(0), "free", "size 0"),
    (PlacementRequest(-5), "free", "size -5"),
    (PlacementRequest(True), "free", "size True"),  # type: ignore[arg-type]
    (req(), "random", "weigher 'random' is not known; accepted: free, provisioned_ratio"),
])
def test_bad_requests(request_: PlacementRequest, weigher: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        schedule([c("h")], request_, weigher)


def test_duplicate_candidate_refused() -> None:
    with pytest.raises(InvalidInput, match="'h#p' is listed twice"):
        schedule([c("h"), c("h")], req())


@pytest.mark.parametrize(("items", "expected"), [
    (["thin"], {"thin": True}),
    (["thin=false", "reflink=yes"], {"thin": False, "reflink": True}),
    (["copy_method=reflink"], {"copy_method": "reflink"}),
    ([], {}),
])
def test_parse_requirements(items: list[str], expected: dict[str, Any]) -> None:
    assert parse_requirements(items) == expected


@pytest.mark.parametrize(("items", "match"), [
    (["thn"], "capability 'thn' is not known; accepted: thin"),
    (["thin=maybe"], "thin='maybe' is not accepted; accepted: true or false"),
    (["copy_method"], "copy_method=True is not accepted"),
    (["size_granularity=1"], "not known"),
])
def test_parse_requirements_refuses(items: list[str], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_requirements(items)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"availability_zone": ""}, "availability zone '' is not accepted"),
    ({"availability_zone": "a" * 64}, "availability zone"),
    ({"availability_zone": "bad zone"}, "availability zone 'bad zone'"),
    ({"host": "../etc"}, "host '../etc'"),
    ({"labels": {"bad key": "x"}}, "pool label 'bad key'"),
    ({"labels": {f"k{i}": "v" for i in range(17)}}, "at most 16"),
    ({"labels": ["tier=gold"]}, "labels is not accepted"),
    ({"capabilities": {"thin": "sometimes"}}, "true or false"),
    ({"capabilities": {"fast": True}}, "capability 'fast' is not known"),
])
def test_validate_hints_refuses(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        validate_hints(**kwargs)


def test_validate_hints_accepts() -> None:
    h = validate_hints(availability_zone="az-1", labels={"tier": "gold"}, capabilities={"thin": "true"}, host="node1")
    assert h == Hints("az-1", {"tier": "gold"}, {"thin": True}, "node1") and bool(h)
    assert not validate_hints()


def test_known_capabilities_cover_the_driver_capabilities() -> None:
    from backends.volume.base import Capabilities

    assert {f.name for f in fields(Capabilities)} - {"size_granularity"} <= set(CAPABILITIES)
