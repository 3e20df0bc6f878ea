"""System checks: the role the service runs as must not be able to get around row-level security,
and the JSON indexes must still work under it.

Run with `python manage.py check --deploy --database default` (part of deploying, see docs/security.md).
"""

from __future__ import annotations

from django.core.checks import Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.db import connections

from superai_flow.tenancy import TENANT_TABLES

HINT = "Point DATABASE_URL at a role without SUPERUSER or BYPASSRLS that owns no table; migrate with "
HINT += "DATABASE_MIGRATION_URL (the owning role). docs/security.md shows the SQL."


@register(Tags.database, Tags.security, deploy=True)
def check_row_level_security(app_configs, databases=None, **kwargs) -> list[Error]:
    if not databases or "default" not in databases or connections["default"].vendor != "postgresql":
        return []
    errors = []
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        role, superuser, bypass = cursor.fetchone()
        if superuser:
            errors.append(Error(f"The service connects as {role}, a superuser: row-level security does not bind it.",
                                hint=HINT, id="superai_flow.E001"))  # fmt: skip
        if bypass:
            errors.append(Error(f"The service connects as {role}, which has BYPASSRLS.", hint=HINT,
                                id="superai_flow.E002"))  # fmt: skip
        cursor.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner) = current_user "
            "FROM pg_class WHERE relkind = 'r' AND relname = ANY(%s)",
            [list(TENANT_TABLES)],
        )
        found = {name: (enabled, forced, owned) for name, enabled, forced, owned in cursor.fetchall()}
    for table in TENANT_TABLES:
        enabled, forced, owned = found.get(table, (False, False, False))
        if not (enabled and forced):
            errors.append(Error(f"Row-level security is not enabled and forced on {table}.",
                                hint="Run the migrations (task_outputs 0005).", id="superai_flow.E003"))  # fmt: skip
        if owned:
            errors.append(Error(f"The service's role {role} owns {table} and could switch its security off.",
                                hint=HINT, id="superai_flow.E004"))  # fmt: skip
    return errors


LEAKPROOF_SQL = "ALTER FUNCTION pg_catalog.jsonb_contains(jsonb, jsonb) LEAKPROOF"


@register(Tags.database, deploy=True)
def check_jsonb_containment_is_leakproof(app_configs, databases=None, **kwargs) -> list[CheckWarning]:
    if not databases or "default" not in databases or connections["default"].vendor != "postgresql":
        return []
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT proleakproof FROM pg_proc WHERE oid = 'pg_catalog.jsonb_contains(jsonb, jsonb)'::regprocedure"
        )
        if cursor.fetchone()[0]:
            return []
    return [
        CheckWarning(
            "Filters on summary and tags cannot use their GIN indexes under row-level security: "
            "jsonb_contains is not marked LEAKPROOF in this database (migrations ran as a role that is no superuser).",
            hint=f"As a superuser, in this database: {LEAKPROOF_SQL}; (task_outputs/0006 explains why it is safe).",
            id="superai_flow.W001",
        )
    ]
