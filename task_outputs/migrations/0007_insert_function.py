"""`superai_insert_task_output`: a create's scope and INSERT in one statement, so one round trip and no
BEGIN/COMMIT (PostgreSQL only; task_outputs.services calls it, docs/performance.md has the figures).

The scope is transaction-local (superai_flow/tenancy.py); a statement outside a transaction is a
transaction of its own, so `set_config(..., true)` here scopes exactly this INSERT and ends with it.
SECURITY INVOKER (the default): row-level security applies to the caller as for any statement, and
the function grants nothing the caller could not do with a `SELECT set_config(...)` of its own. With a
NULL `scope` it leaves the current transaction's scope as it is.

The INSERT is the one task_outputs.services documents: it checks the references (the flow execution of
the organization, not deleted; the task execution of that flow execution), inherits the flow version,
takes the live write position (task_outputs.live) and leaves a taken id alone (ON CONFLICT DO NOTHING).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION superai_insert_task_output(
    scope text, new_id uuid, new_created_at timestamptz, new_updated_at timestamptz, new_task_execution_id uuid,
    new_task_name varchar, new_status varchar, new_summary jsonb, new_output jsonb, new_tags jsonb,
    new_modified_by varchar, grace_start timestamptz, of_flow_execution uuid, of_organization uuid
) RETURNS TABLE (flow_version integer, write_txid bigint, write_horizon bigint, cursor_horizon bigint)
    LANGUAGE plpgsql SET search_path = pg_catalog, public
    AS $$
    #variable_conflict use_column
    BEGIN
        IF scope IS NOT NULL THEN
            PERFORM set_config('superai.organization_ids', scope, true);
        END IF;
        RETURN QUERY
        INSERT INTO task_outputs_taskoutput AS stored (id, created_at, updated_at, task_execution_id, task_name,
            status, summary, output, tags, modified_by, write_txid, write_horizon, cursor_horizon,
            organization_id, flow_execution_id, flow_version, revision)
        SELECT new_id, new_created_at, new_updated_at, new_task_execution_id, new_task_name, new_status,
            new_summary, new_output, new_tags, new_modified_by,
            pg_current_xact_id()::text::bigint, pg_snapshot_xmin(pg_current_snapshot())::text::bigint,
            LEAST(pg_snapshot_xmin(pg_current_snapshot())::text::bigint, superai_first_write_since(grace_start)),
            flow.organization_id, flow.id, flow.flow_version, 1
        FROM flow_executions_flowexecution flow
        WHERE flow.id = of_flow_execution AND flow.organization_id = of_organization AND flow.status <> 'deleted'
            AND (new_task_execution_id IS NULL OR EXISTS (
                SELECT 1 FROM flow_executions_taskexecution task WHERE task.id = new_task_execution_id
                AND task.flow_execution_id = flow.id AND task.status <> 'deleted'))
        ON CONFLICT (id) DO NOTHING
        RETURNING stored.flow_version, stored.write_txid, stored.write_horizon, stored.cursor_horizon;
    END $$
"""
DROP = (
    "DROP FUNCTION IF EXISTS superai_insert_task_output(text, uuid, timestamptz, timestamptz, uuid, varchar, "
    "varchar, jsonb, jsonb, jsonb, varchar, timestamptz, uuid, uuid)"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("task_outputs", "0006_leakproof_jsonb_containment")]

    operations = [migrations.RunPython(create, drop)]
