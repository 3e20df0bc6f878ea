"""Tenant isolation in the database: PostgreSQL row-level security, scoped per transaction.

Every tenant table has a policy that shows and accepts only rows of the organizations named in the
transaction-local setting `superai.organization_ids` (set with `set_config(..., true)`, so a pooled
connection never carries it into the next request). With nothing set, queries see nothing. Superusers
and system jobs see everything only on purpose, with a reason that is logged (`superai_flow.audit`):
their scope then names every organization. Lookups that must happen before the organization is known
(an API key by prefix, a user's memberships, every organization for a bypass) go through SECURITY
DEFINER functions, which alone may look past the policy (`superai.rls_bypass` in their SET clause).

SQLite has no row-level security: there the application-level scoping is the only layer.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, connections, transaction

audit = logging.getLogger("superai_flow.audit")

SCOPE_SETTING = "superai.organization_ids"
# Every table that holds tenant data, with the column naming its organization.
TENANT_TABLES = {
    "organizations_organization": "id",
    "organizations_membership": "organization_id",
    "organizations_apikey": "organization_id",
    "flow_executions_flowexecution": "organization_id",
    "flow_executions_taskexecution": "organization_id",
    "task_outputs_taskoutput": "organization_id",
}


def enforced(using: str = "default") -> bool:
    return connections[using].vendor == "postgresql"


def set_scope(organization_ids: Iterable[uuid.UUID] | None, *, bypass_reason: str = "") -> None:
    """Limit the current transaction to `organization_ids`; None bypasses (audited, with a reason)."""
    if not enforced():
        return
    if not connection.in_atomic_block:
        raise RuntimeError("The tenant scope is transaction-local: set it inside transaction.atomic().")
    with connection.cursor() as cursor:
        if organization_ids is None:
            if not bypass_reason:
                raise ValueError("Bypassing row-level security needs a reason (it is logged).")
            audit.info("Row-level security bypassed: %s", bypass_reason)
            cursor.execute(
                "SELECT set_config(%s, array_to_string(superai_organization_ids(), ','), true)", [SCOPE_SETTING]
            )
        else:
            ids = ",".join(str(pk) for pk in organization_ids)
            cursor.execute("SELECT set_config(%s, %s, true)", [SCOPE_SETTING, ids])


def include_in_scope(organization_id: uuid.UUID) -> None:
    """Add a new organization to the current transaction's scope, so that its creator can write it."""
    if not enforced() or not connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config(%s, concat_ws(',', nullif(current_setting(%s, true), ''), %s::text), true)",
            [SCOPE_SETTING, SCOPE_SETTING, str(organization_id)],
        )


@contextmanager
def tenant_scope(organization_ids: Iterable[uuid.UUID] | None, *, bypass_reason: str = "") -> Iterator[None]:
    """A transaction that sees only `organization_ids` (None: everything, for `bypass_reason`)."""
    with transaction.atomic():
        set_scope(organization_ids, bypass_reason=bypass_reason)
        yield


def system_scope(reason: str):
    """For management commands and other system jobs: every organization, logged with `reason`."""
    return tenant_scope(None, bypass_reason=reason)


# --- Lookups that precede the scope (SECURITY DEFINER functions on PostgreSQL) -------------------


def api_key_by_prefix(prefix: str):
    from superai_flow.organizations.models import APIKey

    if enforced():
        return next(iter(APIKey.objects.raw("SELECT * FROM superai_api_key_by_prefix(%s)", [prefix])), None)
    return APIKey.objects.filter(prefix=prefix).first()


def user_organization_ids(user_id: int) -> frozenset[uuid.UUID]:
    from superai_flow.organizations.models import Membership

    if enforced():
        with connection.cursor() as cursor:
            cursor.execute("SELECT superai_user_organization_ids(%s)", [user_id])
            return frozenset(cursor.fetchone()[0])
    return frozenset(Membership.objects.filter(user_id=user_id).values_list("organization_id", flat=True))


# --- The runtime role --------------------------------------------------------------------------


def runtime_role(using: str) -> str | None:
    """The role the service runs as, when migrations run as another one (DATABASE_MIGRATION_URL)."""
    role = settings.DATABASE_RUNTIME_ROLE or settings.DATABASES["default"].get("USER")
    return role if role and role != connections[using].settings_dict.get("USER") else None


def grant_runtime_privileges(role: str, using: str = "default") -> None:
    """Let `role` read and write every table and sequence, now and in later migrations; nothing more."""
    with connections[using].cursor() as cursor:
        quoted = connections[using].ops.quote_name(role)
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}")
        cursor.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted}"
        )
        cursor.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {quoted}")


def grant_after_migrate(sender, using: str = "default", **kwargs) -> None:
    """post_migrate: keep the runtime role's privileges complete whenever the owner migrates."""
    role = runtime_role(using)
    if role and connections[using].vendor == "postgresql":
        grant_runtime_privileges(role, using)


# --- Requests ------------------------------------------------------------------------------------


class TenantScopeMiddleware:
    """Runs each request in one transaction, scoped to the signed-in user's organizations.

    API-key requests are rescoped to the key's organization when DRF authenticates them; a request
    nobody is signed in to sees no tenant rows at all. Anonymous pages (the front page, sign-in) need
    no transaction. On SQLite (no row-level security) requests run as they would anyway, without a
    request-long transaction, so that readers do not queue behind writers.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not enforced():
            return self.get_response(request)
        from django.db import InterfaceError, OperationalError

        try:
            user = request.user
            if not user.is_authenticated and not request.path.startswith("/api/"):
                return self.get_response(request)
            with transaction.atomic():
                if user.is_authenticated and user.is_superuser:
                    set_scope(None, bypass_reason=f"superuser {user.get_username()}: {request.method} {request.path}")
                elif user.is_authenticated:
                    set_scope(user_organization_ids(user.pk))
                return self.get_response(request)
        except (OperationalError, InterfaceError) as exc:
            from superai_flow.errors import database_unavailable

            return database_unavailable(request, exc)
