"""Policy data: pydantic models for policies, their selector, retention and backup options, runs.

Validation lives here so the CLI, the API and the service refuse the same things with the same
messages; :func:`validated` turns pydantic's errors into ``InvalidInput`` naming the field.
"""

from __future__ import annotations

from datetime import datetime
from collections.abc import Callable
import math
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, field_validator, model_validator

from storage.errors import InvalidInput
from storage.bounds import (
    COUNT_MAX, DURATION_TEXT_MAX, LABELS_MAX, LIST_MAX, NAME_MAX, PATH_MAX, REF_MAX, SCHEDULE_MAX, TIMEZONE_MAX, URL_MAX,
    check_labels, short_repr,
)
from storage.names import validate_name
from storage.policy import retention
from storage.policy.durations import bare_minute_message, parse_duration
from storage.policy.schedule import Schedule, parse_schedule, parse_timezone
from storage.units import parse_size

PolicyKind = Literal["snapshot", "backup"]
VerifyMode = Literal["none", "quick", "deep"]
RunStatus = Literal["running", "succeeded", "failed", "partial", "interrupted"]
POLICY_LABEL = "storage.policy"  # label on every item a policy creates: the policy id
SLOT_LABEL = "storage.policy.slot"  # the slot (UTC ISO time) the item was made for
TIME_LABEL = "storage.policy.time"  # when the runner made it (UTC ISO time, the runner's clock)
TRIGGER_LABEL = "storage.policy.trigger"  # "manual" on items of a `run --now`; absent on scheduled items
RUN_LABEL = "storage.policy.run"  # a manual run submitted as a job: its job id (a re-delivery reuses its items)
KEEP_FIELDS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def _checked(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a validating helper; its InvalidInput becomes a ValueError pydantic collects per field."""
    try:
        return fn(*args, **kwargs)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def validated(model: type[M], data: dict[str, Any]) -> M:
    """``model.model_validate(data)`` with errors as one InvalidInput naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        fields = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or model.__name__.lower()
            fields.append(loc)
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}")
        raise InvalidInput("; ".join(problems), field=",".join(fields)) from None


class Selector(BaseModel):
    """Which volumes a policy covers: named volumes, or all volumes matching labels and/or a pool."""

    model_config = ConfigDict(extra="forbid")
    volumes: list[Annotated[str, Field(min_length=1, max_length=REF_MAX)]] = Field(default_factory=list, max_length=LIST_MAX)
    labels: dict[str, str] = Field(default_factory=dict, max_length=LABELS_MAX)
    pool: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    all: bool = False

    @field_validator("volumes")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        return sorted({v if _looks_like_id(v) else _checked(validate_name, v, kind="volume") for v in value})

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _checked(check_labels, value, field="selector.labels")

    @model_validator(mode="after")
    def _one_kind(self) -> "Selector":
        filters = bool(self.labels) or self.pool is not None
        if self.all and (self.volumes or filters):
            raise ValueError("'all' cannot be combined with volume names, labels or a pool")
        if self.volumes and filters:
            raise ValueError("choose volume names, or labels and/or a pool, not both")
        if not (self.all or self.volumes or filters):
            raise ValueError("select volumes: accepted: volume names, labels, a pool, or all")
        return self

    def describe(self) -> str:
        if self.all:
            return "all volumes"
        if self.volumes:
            return "volumes " + ", ".join(self.volumes)
        parts = [f"label {k}={v}" for k, v in sorted(self.labels.items())]
        if self.pool:
            parts.append(f"pool {self.pool}")
        return " and ".join(parts)


def _looks_like_id(text: str) -> bool:
    from storage.names import is_uuid

    return is_uuid(text)


KeepCount = Annotated[int, Field(ge=1, le=COUNT_MAX)]


class Retention(BaseModel):
    """restic-style keep rules; see storage.policy.retention for the exact semantics."""

    model_config = ConfigDict(extra="forbid")
    keep_last: KeepCount | None = None
    keep_hourly: KeepCount | None = None
    keep_daily: KeepCount | None = None
    keep_weekly: KeepCount | None = None
    keep_monthly: KeepCount | None = None
    keep_yearly: KeepCount | None = None
    keep_within: str | None = Field(default=None, max_length=DURATION_TEXT_MAX)
    keep_all: bool = False

    @field_validator(*KEEP_FIELDS, mode="before")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= COUNT_MAX:
            raise ValueError(
                f"{short_repr(value)} is not accepted; accepted: a whole number of at least 1 and at most {COUNT_MAX} (or leave it out)"
            )
        return value

    @field_validator("keep_within")
    @classmethod
    def _within(cls, value: str | None) -> str | None:
        return None if value is None else _checked(parse_duration, value, field="keep_within").text

    @model_validator(mode="after")
    def _some_rule(self) -> "Retention":
        rules = [f for f in KEEP_FIELDS if getattr(self, f) is not None] + (["keep_within"] if self.keep_within else [])
        if self.keep_all and rules:
            raise ValueError(f"keep_all cannot be combined with {', '.join(rules)}")
        if not self.keep_all and not rules:
            raise ValueError(
                "no keep rule given; accepted: at least one of keep-last, keep-hourly, keep-daily, keep-weekly, "
                "keep-monthly, keep-yearly, keep-within, or keep-all to keep everything explicitly"
            )
        return self

    def rules(self) -> retention.Rules:
        return retention.Rules(
            last=self.keep_last,
            hourly=self.keep_hourly,
            daily=self.keep_daily,
            weekly=self.keep_weekly,
            monthly=self.keep_monthly,
            yearly=self.keep_yearly,
            within=parse_duration(self.keep_within) if self.keep_within else None,
            keep_all=self.keep_all,
        )

    def describe(self) -> str:
        if self.keep_all:
            return "keep all"
        parts = [f"{f.replace('_', '-')} {getattr(self, f)}" for f in KEEP_FIELDS if getattr(self, f) is not None]
        if self.keep_within:
            parts.append(f"keep-within {self.keep_within}")
        return ", ".join(parts)


def refuse_bare_minutes(rules: Retention) -> None:
    """New keep-within rules must not use a bare ``m`` (restic's months); stored ones still load."""
    if rules.keep_within and (message := bare_minute_message(rules.keep_within, "retention.keep_within")):
        raise InvalidInput(message, field="keep_within")


class BackupOptions(BaseModel):
    """Extras of backup policies."""

    model_config = ConfigDict(extra="forbid")
    repository: str | None = Field(default=None, max_length=URL_MAX)  # None: the configured default repository
    # Compression is a property of the repository (fixed when its config object is written, from
    # [backup] compression); the engine takes no per-backup choice, so a given value is checked
    # against the repository when the policy is created or changed.
    compression: Literal["zstd", "none"] | None = None
    encryption_key_file: str | None = Field(default=None, max_length=PATH_MAX)  # path of the key file; never the key itself
    verify: VerifyMode = "none"
    verify_sample_percent: StrictFloat = 100.0
    max_concurrent: StrictInt = 1
    bandwidth_limit: int | None = None  # bytes per second

    @field_validator("verify_sample_percent")
    @classmethod
    def _percent(cls, value: float) -> float:
        if not math.isfinite(value) or not 0 < value <= 100:
            raise ValueError(f"{value!r} is not accepted; accepted: a percentage greater than 0 and at most 100")
        return value

    @field_validator("max_concurrent")
    @classmethod
    def _concurrency(cls, value: int) -> int:
        if isinstance(value, bool) or value < 1 or value > 64:
            raise ValueError(f"{value!r} is not accepted; accepted: a whole number from 1 to 64")
        return value

    @field_validator("bandwidth_limit", mode="before")
    @classmethod
    def _bandwidth(cls, value: Any) -> int | None:
        if value is None:
            return None
        return _checked(parse_size, str(value).removesuffix("/s"), field="bandwidth_limit")


class Policy(BaseModel):
    id: str
    name: str
    kind: PolicyKind
    schedule: str
    timezone: str = "UTC"
    selector: Selector
    retention: Retention
    backup: BackupOptions | None = None
    enabled: bool = True
    created_at: datetime
    updated_at: datetime

    def parsed_schedule(self) -> Schedule:
        return parse_schedule(self.schedule, self.timezone)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "schedule": self.parsed_schedule().describe(),
            "selector": self.selector.describe(),
            "retention": self.retention.describe(),
            "enabled": self.enabled,
        }


class PolicySpec(BaseModel):
    """What a user gives to create or update a policy (validated, before it has an id)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=NAME_MAX)
    kind: PolicyKind
    schedule: str = Field(max_length=SCHEDULE_MAX)
    timezone: str = Field(default="UTC", max_length=TIMEZONE_MAX)
    selector: Selector
    retention: Retention
    backup: BackupOptions | None = None
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _checked(validate_name, value, kind="policy")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return _checked(parse_schedule, value, "UTC").expression  # validity does not depend on the zone

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        _checked(parse_timezone, value)
        return value

    @model_validator(mode="after")
    def _check(self) -> "PolicySpec":
        if self.kind == "backup" and self.backup is None:
            self.backup = BackupOptions()
        if self.kind == "snapshot" and self.backup is not None and self.backup != BackupOptions():
            raise ValueError("backup options (repository, verify, ...) apply only to kind 'backup'")
        if self.kind == "snapshot":
            self.backup = None
        return self


class RunRecord(BaseModel):
    """One run of one policy, as kept in the catalog (policy_runs)."""

    id: str
    policy_id: str
    policy_name: str
    trigger: Literal["schedule", "manual"]
    slot_time: datetime
    started_at: datetime
    finished_at: datetime | None = None
    status: RunStatus
    attempt: int = 1
    missed_slots: int = 0
    items_created: list[str] = Field(default_factory=list)
    items_pruned: list[str] = Field(default_factory=list)
    bytes: int = 0
    error: str | None = None
