"""What every model shares: a UUID primary key, created/updated timestamps and idempotent creation."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from superai_flow.exceptions import Conflict, NotFound, detail

M = TypeVar("M", bound=models.Model)


class TimestampedModel(models.Model):
    """Abstract base: UUID primary key, `created_at` (settable, e.g. for backfills) and `updated_at`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True, editable=False)

    class Meta:
        abstract = True


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: 1 == 1.0, but true != 1 and object key order does not matter."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def create_idempotently(
    model: type[M],
    *,
    id: uuid.UUID | None,
    values: dict[str, Any],
    server_values: Callable[[], dict[str, Any]] | None = None,
) -> tuple[M, bool]:
    """Create a tenant record, or return the stored one when a client retries with the same `id`.

    `values` maps attribute names to the values as they will be stored (defaults applied), with
    `created_at` only when the client sent it. A retry whose values all match returns (record, False);
    any difference, another organization's record or a soft-deleted one (`is_deleted`) raises
    Conflict. The insert comes first (the common case costs no extra query); concurrent retries are
    settled by the primary key: the losers see the winner's row and compare against it.
    `server_values`, called inside the insert's transaction, adds fields that retries do not compare.
    """
    try:
        with transaction.atomic():
            extra = server_values() if server_values is not None else {}
            return model.objects.create(**values, **extra, **({"id": id} if id is not None else {})), True
    except IntegrityError as error:
        if id is None:
            raise
        # Usually a retry: compare with the stored row (committed: PostgreSQL made this insert wait
        # for the other transaction). A row this caller cannot see is another organization's.
        existing = model.objects.filter(pk=id).first()
        if existing is None:
            if _primary_key_taken(error, model):
                raise Conflict("This id is already used by another record.") from None
            raise
    return replayed(existing, values), False


def replayed(existing: M | None, values: dict[str, Any]) -> M:
    """`existing`, the stored record a client's retry names by id, when `values` are what it stores.

    Conflict when they differ, or when the id is another organization's record (out of sight:
    `existing` is None) or a soft-deleted one.
    """
    if existing is None or existing.organization_id != values["organization_id"] or existing.is_deleted:
        raise Conflict("This id is already used by another record.")
    differing = [name for name, value in values.items() if not json_equal(getattr(existing, name), value)]
    if differing:
        raise Conflict(
            "A record with this id already exists with a different payload.",
            details=[detail(name, "conflict", "Differs from the stored record with this id.") for name in differing],
        )
    return existing


def _primary_key_taken(error: IntegrityError, model: type[models.Model]) -> bool:
    """Whether `error` is a duplicate primary key of `model` (the row itself may be out of sight)."""
    cause = getattr(error, "__cause__", None)
    diag = getattr(cause, "diag", None)
    if diag is not None:
        return getattr(cause, "sqlstate", None) == "23505" and diag.constraint_name == f"{model._meta.db_table}_pkey"
    return f"UNIQUE constraint failed: {model._meta.db_table}.{model._meta.pk.column}" in str(error)


def lock_for_change(record: M) -> M:
    """`record` again, locked until the transaction ends, so that concurrent changes take turns.

    NotFound when it was soft-deleted meanwhile (`is_deleted`).
    """
    locked = type(record).objects.select_for_update().get(pk=record.pk)
    if locked.is_deleted:
        raise NotFound()
    return locked
