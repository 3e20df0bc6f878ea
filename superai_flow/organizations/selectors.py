"""Reads for organizations: lookups by name or id, and which organizations a caller may act for."""

from __future__ import annotations

import uuid

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet

from superai_flow.organizations.models import Organization
from superai_flow.tenancy import user_organization_ids


def organization_by_name_or_id(value: str) -> Organization | None:
    """The organization whose id (a UUID string) or exact name is `value`."""
    try:
        return Organization.objects.filter(pk=uuid.UUID(value)).first()
    except ValueError:
        return Organization.objects.filter(name=value).first()


def organization_ids_for_user(user: AbstractBaseUser) -> frozenset[uuid.UUID]:
    """The organizations `user` is a member of (read past row-level security: it decides the scope)."""
    return user_organization_ids(user.pk)


def organizations_for_user(user: AbstractBaseUser) -> QuerySet[Organization]:
    """The organizations whose pages `user` may see: their memberships, or every one for superusers."""
    if user.is_superuser:
        return Organization.objects.order_by("name")
    return Organization.objects.filter(memberships__user=user).order_by("name")
