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

POLICY = """
CREATE POLICY tenant_isolation ON {table}
    USING ({column} = ANY (string_to_array(current_setting('superai.organization_ids', true), ',')::uuid[])
           OR current_setting('superai.rls_bypass', true) = 'on')
    WITH CHECK ({column} = ANY (string_to_array(current_setting('superai.organization_ids', true), ',')::uuid[])
           OR current_setting('superai.rls_bypass', true) = 'on')
"""

# Each runs as its owner, sees past the policies through its own SET clause, and returns one narrow thing.
FUNCTIONS = [
    """
    CREATE OR REPLACE FUNCTION superai_api_key_by_prefix(key_prefix text) RETURNS SETOF organizations_apikey
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public SET superai.rls_bypass = 'on'
        AS $$ SELECT * FROM public.organizations_apikey WHERE prefix = key_prefix $$
    """,
    """
    CREATE OR REPLACE FUNCTION superai_user_organization_ids(member integer) RETURNS uuid[]
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public SET superai.rls_bypass = 'on'
        AS $$ SELECT coalesce(array_agg(organization_id ORDER BY organization_id), '{}')
              FROM public.organizations_membership WHERE user_id = member $$
    """,
    """
    CREATE OR REPLACE FUNCTION superai_first_write_since(moment timestamptz) RETURNS bigint
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public SET superai.rls_bypass = 'on'
        AS $$ SELECT write_horizon FROM public.task_outputs_taskoutput
              WHERE updated_at >= moment ORDER BY updated_at LIMIT 1 $$
    """,
]


def enable(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, column in TENANT_TABLES.items():
        schema_editor.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        schema_editor.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        schema_editor.execute(POLICY.format(table=table, column=column))
    for function in FUNCTIONS:
        schema_editor.execute(function)


def disable(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in ("superai_api_key_by_prefix(text)", "superai_user_organization_ids(integer)",
                 "superai_first_write_since(timestamptz)"):  # fmt: skip
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}")
    for table in TENANT_TABLES:
        schema_editor.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        schema_editor.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        schema_editor.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


class Migration(migrations.Migration):
    dependencies = [
        ("organizations", "0001_initial"),
        ("flow_executions", "0002_lifecycle_timestamps"),
        ("task_outputs", "0004_admin_indexes"),
    ]

    operations = [migrations.RunPython(enable, disable)]
