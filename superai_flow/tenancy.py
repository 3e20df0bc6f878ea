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
from contextlib import ExitStack, contextmanager

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, connections, transaction

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
    "task_outputs_tag": "organization_id",  # task_outputs/0012: one row per tag of each output
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


def api_key_by_prefix(prefix: str, *, scope_if_hash: str | None = None):
    """The API key with this prefix, active or not, or None.

    With `scope_if_hash`, inside a transaction, the same statement also scopes the transaction to the
    key's organization when the key is active and its hash is `scope_if_hash` (nothing otherwise): a
    request's credentials and its scope cost one round trip, not two.
    """
    from superai_flow.organizations.models import APIKey

    if not enforced():
        return APIKey.objects.filter(prefix=prefix).first()
    # A plain cursor and from_db, not raw(): RawQuerySet's machinery was 8% of a create's CPU, and
    # psycopg returns every column of this table as the field's Python type already.
    columns = [field.column for field in APIKey._meta.concrete_fields]
    scoping = scope_if_hash is not None and connection.in_atomic_block
    with connection.cursor() as cursor:
        if scoping:
            cursor.execute(
                f"SELECT {', '.join(columns)}, set_config(%s, CASE WHEN key_hash = %s AND revoked_at IS NULL"
                " THEN organization_id::text ELSE '' END, true) FROM superai_api_key_by_prefix(%s)",
                [SCOPE_SETTING, scope_if_hash, prefix],
            )
        else:
            cursor.execute(f"SELECT {', '.join(columns)} FROM superai_api_key_by_prefix(%s)", [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    api_key = APIKey.from_db(
        connection.alias, [field.attname for field in APIKey._meta.concrete_fields], row[: len(columns)]
    )
    api_key.scoped = scoping
    return api_key


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


def outside_tenant_scope(view):
    """Marks a view that reads no tenant data (the probes, /metrics): TenantScopeMiddleware opens no
    transaction for it, whoever is signed in, so that a signed-in browser's probe costs no query. Any
    tenant query it made anyway would see nothing."""
    view.outside_tenant_scope = True
    return view


class TenantScopeMiddleware:
    """Runs each request's view in one transaction, scoped to the signed-in user's organizations.

    API-key requests are rescoped to the key's organization when DRF authenticates them; a request
    nobody is signed in to sees no tenant rows at all. Anonymous pages (the front page, sign-in) need
    no transaction. On SQLite (no row-level security) requests run as they would anyway, without a
    request-long transaction, so that readers do not queue behind writers.

    The transaction opens once the URL has named the view (process_view) and ends with the response.
    An API-key request to an action its viewset lists in `statement_scoped_actions` gets none: that
    action scopes each statement it runs itself (to the key's organization, which DRF's authentication
    finds without a scope), so that a create costs one round trip instead of BEGIN, scope, INSERT and
    COMMIT (docs/performance.md). Any statement such an action runs unscoped sees no tenant rows.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not enforced():
            return self.get_response(request)
        try:
            with ExitStack() as request._tenant_transaction:
                return self.get_response(request)
        except (OperationalError, InterfaceError) as exc:
            return _database_unavailable(request, exc)

    def process_view(self, request, view_func, view_args, view_kwargs):
        transaction_of_request = getattr(request, "_tenant_transaction", None)
        if transaction_of_request is None or getattr(view_func, "outside_tenant_scope", False):  # or SQLite
            return None
        try:
            user = request.user
            if not user.is_authenticated and not request.path.startswith("/api/"):
                return None
            if _scopes_its_own_statements(request, view_func):
                return None
            transaction_of_request.enter_context(transaction.atomic())
            if user.is_authenticated and user.is_superuser:
                set_scope(None, bypass_reason=f"superuser {user.get_username()}: {request.method} {request.path}")
            elif user.is_authenticated:
                set_scope(user_organization_ids(user.pk))
        except (OperationalError, InterfaceError) as exc:
            return _database_unavailable(request, exc)
        return None


def _database_unavailable(request, exc: Exception):
    from superai_flow.errors import database_unavailable  # errors imports DRF, which needs settings loaded

    return database_unavailable(request, exc)


def _scopes_its_own_statements(request, view_func) -> bool:
    """An API-key request to a viewset action listed in the viewset's `statement_scoped_actions`."""
    actions = getattr(view_func, "actions", None)
    if not actions or actions.get(request.method.lower()) not in getattr(view_func.cls, "statement_scoped_actions", ()):
        return False
    return request.META.get("HTTP_AUTHORIZATION", "")[:7].lower() == "bearer "
