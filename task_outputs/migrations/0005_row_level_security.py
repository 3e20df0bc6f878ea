"""Row-level security on every tenant table, and the lookups that must precede a tenant scope.

PostgreSQL only (superai_flow/tenancy.py explains the design); SQLite keeps application-level scoping.
Tables get ENABLE and FORCE ROW LEVEL SECURITY, so their owner is held to the policies too.
"""

from django.db import migrations

# A frozen copy of superai_flow.tenancy.TENANT_TABLES: a migration must not change when the code does.
TENANT_TABLES = {
    "organizations_organization": "id",
    "organizations_membership": "organization_id",
    "organizations_apikey": "organization_id",
    "flow_executions_flowexecution": "organization_id",
    "flow_executions_taskexecution": "organization_id",
    "task_outputs_taskoutput": "organization_id",
}

# A plain comparison with the scope, which the planner can use as an index condition. (A bypass flag
# OR-ed in here would cost it its estimates, and admin its speed: a bypassing transaction lists every
# organization in its scope instead.)
POLICY = """
CREATE POLICY tenant_isolation ON {table}
    USING ({column} = ANY (string_to_array(current_setting('superai.organization_ids', true), ',')::uuid[]))
    WITH CHECK ({column} = ANY (string_to_array(current_setting('superai.organization_ids', true), ',')::uuid[]))
"""
# Reads only, only for the owning role (the one migrating, which owns the functions below), and only
# while a function's SET clause raises the flag. The service's own role never matches it.
DEFINER_POLICY = """
CREATE POLICY definer_lookups ON {table} FOR SELECT TO CURRENT_USER
    USING (current_setting('superai.rls_bypass', true) = 'on')
"""

# Each runs as its owner, raises superai.rls_bypass to see past tenant_isolation (definer_lookups) only
# while its one query runs, and returns one narrow thing. (A `SET superai.rls_bypass` clause would be
# simpler, but PostgreSQL lets only superusers attach a custom setting to a function.)
DEFINER = """
CREATE OR REPLACE FUNCTION {signature} RETURNS {returns}
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$
    DECLARE
        previous text := current_setting('superai.rls_bypass', true);
        {result}
    BEGIN
        PERFORM set_config('superai.rls_bypass', 'on', true);
        {body};
        PERFORM set_config('superai.rls_bypass', coalesce(previous, ''), true);
        RETURN {returned};
    END $$
"""
FUNCTIONS = {
    "superai_api_key_by_prefix(key_prefix text)": (
        "SETOF organizations_apikey",
        "RETURN QUERY SELECT * FROM public.organizations_apikey WHERE prefix = key_prefix",
    ),
    "superai_user_organization_ids(member integer)": (
        "uuid[]",
        "result := (SELECT coalesce(array_agg(organization_id ORDER BY organization_id), '{}')"
        " FROM public.organizations_membership WHERE user_id = member)",
    ),
    "superai_organization_ids()": (
        "uuid[]",
        "result := (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM public.organizations_organization)",
    ),
    "superai_first_write_since(moment timestamptz)": (
        "bigint",
        "result := (SELECT write_horizon FROM public.task_outputs_taskoutput"
        " WHERE updated_at >= moment ORDER BY updated_at LIMIT 1)",
    ),
}


def definer_function(signature: str, returns: str, body: str) -> str:
    returns_rows = returns.startswith("SETOF")
    return DEFINER.format(
        signature=signature,
        returns=returns,
        result="" if returns_rows else f"result {returns};",
        body=body,
        returned="" if returns_rows else "result",
    )


def enable(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, column in TENANT_TABLES.items():
        schema_editor.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        schema_editor.execute(POLICY.format(table=table, column=column))
        schema_editor.execute(DEFINER_POLICY.format(table=table))
    for signature, (returns, body) in FUNCTIONS.items():
        schema_editor.execute(definer_function(signature, returns, body))


def disable(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for signature in FUNCTIONS:
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {signature}")
    for table in TENANT_TABLES:
        schema_editor.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        schema_editor.execute(f"DROP POLICY IF EXISTS definer_lookups ON {table}")
        schema_editor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


class Migration(migrations.Migration):
    dependencies = [
        ("organizations", "0001_initial"),
        ("flow_executions", "0002_lifecycle_timestamps"),
        ("task_outputs", "0004_admin_indexes"),
    ]

    operations = [migrations.RunPython(enable, disable)]
