"""LVM naming and output parsing for the LVM backend (pure functions, tested on the host).

LV names derive from catalog UUIDs only: ``volume-<uuid>`` and ``snap-<uuid>`` (LVM reserves
names starting with ``snapshot``). A snapshot LV carries the tag ``svol.<volume uuid>`` so its
volume is known even after a thin revert swapped the volume LV underneath it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from storage.errors import InvalidInput

VOLUME_PREFIX = "volume-"
SNAPSHOT_PREFIX = "snap-"
PARENT_TAG = "svol."
_VG_RE = re.compile(r"^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}$")
# lvs columns we read, in order; one LV per line with '|' between fields.
LV_FIELDS = ("lv_name", "lv_size", "lv_attr", "origin", "pool_lv", "lv_tags", "data_percent", "metadata_percent", "lv_dm_path", "origin_size")
LVS_ARGS = ["lvs", "--noheadings", "--nosuffix", "--units", "b", "--separator", "|", "-o", ",".join(LV_FIELDS)]
VGS_FIELDS = ("vg_name", "vg_size", "vg_free", "vg_extent_size")


def validate_vg_name(name: object) -> str:
    if not isinstance(name, str) or not _VG_RE.match(name) or name in (".", ".."):
        raise InvalidInput(
            f"LVM option vg_name {name!r} is not a volume group name; accepted: 1-127 characters of "
            "letters, digits and + _ . - (not starting with '-')",
            field="vg_name",
        )
    return name


def volume_lv(volume_id: str) -> str:
    return VOLUME_PREFIX + str(uuid.UUID(volume_id))


def snapshot_lv(snapshot_id: str) -> str:
    return SNAPSHOT_PREFIX + str(uuid.UUID(snapshot_id))


def parent_tag(volume_id: str) -> str:
    return PARENT_TAG + str(uuid.UUID(volume_id))


def id_of(lv_name: str) -> tuple[str, str] | None:
    """('volume'|'snapshot', uuid) for one of our LV names, else None."""
    for prefix, kind in ((VOLUME_PREFIX, "volume"), (SNAPSHOT_PREFIX, "snapshot")):
        if lv_name.startswith(prefix):
            try:
                return kind, str(uuid.UUID(lv_name[len(prefix):]))
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class LvInfo:
    name: str
    size_bytes: int
    attr: str
    origin: str
    pool: str
    tags: tuple[str, ...]
    data_percent: float | None
    metadata_percent: float | None
    dm_path: str
    origin_size_bytes: int | None = None  # of a thick snapshot: the size of the data it shows

    @property
    def data_size_bytes(self) -> int:
        """The size of the data the LV shows (a thick snapshot's size is its exception store's)."""
        return self.origin_size_bytes if self.is_old_snapshot and self.origin_size_bytes else self.size_bytes

    @property
    def active(self) -> bool:
        return len(self.attr) > 4 and self.attr[4] == "a"

    @property
    def is_thin_pool(self) -> bool:
        return self.attr[:1] == "t"

    @property
    def is_thin_volume(self) -> bool:
        return self.attr[:1] == "V"

    @property
    def is_old_snapshot(self) -> bool:
        """A thick (copy-on-write) snapshot: 's', or 'S' when invalid/merging."""
        return self.attr[:1] in ("s", "S")

    @property
    def is_open(self) -> bool:
        return len(self.attr) > 5 and self.attr[5] == "o"

    def parent_volume_id(self) -> str | None:
        for tag in self.tags:
            if tag.startswith(PARENT_TAG):
                return tag[len(PARENT_TAG):]
        return None


def _percent(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def parse_lvs(output: str) -> list[LvInfo]:
    """Parse `lvs` output produced with LVS_ARGS (exact byte sizes, '|' separated)."""
    result = []
    for line in output.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < len(LV_FIELDS):
            raise ValueError(f"unexpected lvs line {line!r}")
        name, size, attr, origin, pool, tags, data, meta, dm_path, origin_size = parts[: len(LV_FIELDS)]
        result.append(
            LvInfo(
                name=name,
                size_bytes=int(float(size)),
                attr=attr,
                origin=origin,
                pool=pool,
                tags=tuple(t for t in tags.split(",") if t),
                data_percent=_percent(data),
                metadata_percent=_percent(meta),
                dm_path=dm_path,
                origin_size_bytes=int(float(origin_size)) if origin_size else None,
            )
        )
    return result


@dataclass(frozen=True)
class VgInfo:
    name: str
    size_bytes: int
    free_bytes: int
    extent_bytes: int


def parse_vgs(output: str) -> VgInfo:
    for line in output.splitlines():
        if line.strip():
            name, size, free, extent = (p.strip() for p in line.split("|")[:4])
            return VgInfo(name, int(float(size)), int(float(free)), int(float(extent)))
    raise ValueError("vgs printed no volume group")


def cow_size_bytes(origin_bytes: int, extent_bytes: int) -> int:
    """Size of a thick snapshot's exception store that can absorb a full rewrite of the origin.

    Each 4 KiB chunk costs 16 bytes of metadata (plus one header chunk), so origin + 1/256 +
    one extent, rounded up to whole extents. os-brick uses the origin size rounded to 0.01 GiB,
    which can be smaller than the origin and overflows (invalidates the snapshot) on a full rewrite.
    """
    raw = origin_bytes + origin_bytes // 256 + extent_bytes
    return -(-raw // extent_bytes) * extent_bytes


def gib_string_rounded_up(size_bytes: int) -> str:
    """A size for os-brick's '%sg' formats that is never smaller than size_bytes."""
    hundredths = -(-size_bytes * 100 // 2**30)
    return f"{hundredths // 100}.{hundredths % 100:02d}"
