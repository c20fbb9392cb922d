"""What clients send, checked before anything is stored: the task card, an experience, a publish and a query.

Text is stored as sent (it is data: SQL, HTML, Markdown and formulas stay plain characters; they are escaped where
shown, see :mod:`core.cloud.output`). Refused: NUL characters and unpaired surrogates (PostgreSQL cannot store the
first, no database can store the second as UTF-8, so both databases refuse them alike), unknown fields, and values
out of range."""
from __future__ import annotations

import base64
import binascii
import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from core.fingerprint.validation import MAX_CLASS_COUNT, MAX_CLASSES, MAX_NAME_CHARS

#: the four ways of borrowing knowledge the paper measured (core.catalogue.knowledge.SCENARIOS' values)
SCENARIOS = ("architecture", "pretraining data", "augmentation policy", "co-training data")
MAX_TEXT_CHARS = 4000


def storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character, which cannot be stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains an unpaired surrogate (not valid Unicode text)") from None
    return value


def Text(max_chars: int, min_chars: int = 0):  # noqa: N802 (a type alias factory)
    return Annotated[str, Field(min_length=min_chars, max_length=max_chars), AfterValidator(storable)]


def _classes(value: dict[str, int]) -> dict[str, int]:
    if len(value) > MAX_CLASSES:
        raise ValueError(f"has {len(value):,} classes, more than {MAX_CLASSES:,}")
    for name, count in value.items():
        storable(name)
        if len(name) > MAX_NAME_CHARS:
            raise ValueError(f"has a class name longer than {MAX_NAME_CHARS} characters")
        if not 0 <= count <= MAX_CLASS_COUNT:
            raise ValueError(f"class '{name[:40]}' must count between 0 and {MAX_CLASS_COUNT:,} images")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TaskCard(Strict):
    """What a task is: shown beside its rank. ``classes``: class name -> number of images (default: the
    fingerprint's class counts)."""

    name: Text(MAX_NAME_CHARS, 1)
    modality: Text(200) = ""
    anatomy: Text(200) = ""
    classes: Annotated[dict[str, int], AfterValidator(_classes)] = Field(default_factory=dict)
    terms_of_reuse: Text(2000) = ""
    contact: Text(500) = ""


class Transferred(Strict):
    """What was borrowed: a source task (a cloud task id or a name), an architecture name, an augmentation policy;
    at least one of them."""

    source_task: Text(MAX_NAME_CHARS) = ""
    architecture: Text(MAX_NAME_CHARS) = ""
    policy: Text(MAX_TEXT_CHARS) = ""

    @model_validator(mode="after")
    def _something(self) -> "Transferred":
        if not (self.source_task or self.architecture or self.policy):
            raise ValueError("name at least one of source_task, architecture, policy")
        return self


class ExperienceIn(Strict):
    """One measurement: ``metric`` (e.g. AUROC) without and with the transfer, over ``repetitions`` runs."""

    scenario: Literal[SCENARIOS]
    transferred: Transferred
    metric: Text(64, 1)
    value_without: float
    value_with: float
    repetitions: int = Field(ge=1, le=100_000)
    note: Text(MAX_TEXT_CHARS) = ""

    @model_validator(mode="after")
    def _finite(self) -> "ExperienceIn":
        if not (math.isfinite(self.value_without) and math.isfinite(self.value_with)):
            raise ValueError("value_without and value_with must be finite numbers")
        return self


class PublishRequest(Strict):
    """``fingerprint``: the fingerprint file's bytes, base64; ``request_id``: chosen by the client, so that a retry
    of the same publish returns the task already made instead of a second one."""

    request_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
    card: TaskCard
    fingerprint: str


class CardUpdate(Strict):
    card: TaskCard


class QueryRequest(Strict):
    fingerprint: str
    distance: Text(32) | None = None


def decode_fingerprint(text: str) -> bytes:
    """The bytes of a base64 fingerprint field; ValueError when it is not base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("field 'fingerprint' is not base64 text") from None


def encode_fingerprint(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
