"""Let the GIN indexes on `summary` and `tags` work under row-level security.

Under a policy, PostgreSQL runs a filter ahead of the policy's own condition only if the filter's
functions are LEAKPROOF, and an index condition always runs first: so `summary @> ...` and
`tags @> ...` (jsonb_contains, not marked LEAKPROOF) fall back to scanning every row the policy lets
through. jsonb_contains reports nothing about the values it compares: its only errors are running
out of memory or stack, neither of which names a value (and the API's 64-level nesting limit keeps
the second away). Marking it LEAKPROOF costs no isolation; it changes this database's catalog only.

Only a superuser may mark a function LEAKPROOF. Migrating as another role skips this step, and the
deploy check warns (superai_flow.W001) with the statement for a superuser to run.
"""

from django.db import migrations

FUNCTION = "pg_catalog.jsonb_contains(jsonb, jsonb)"


def _as_superuser(schema_editor) -> bool:
    if schema_editor.connection.vendor != "postgresql":
        return False
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        return cursor.fetchone()[0]


def mark(apps, schema_editor):
    if _as_superuser(schema_editor):
        schema_editor.execute(f"ALTER FUNCTION {FUNCTION} LEAKPROOF")


def unmark(apps, schema_editor):
    if _as_superuser(schema_editor):
        schema_editor.execute(f"ALTER FUNCTION {FUNCTION} NOT LEAKPROOF")


class Migration(migrations.Migration):
    dependencies = [("task_outputs", "0005_row_level_security")]

    operations = [migrations.RunPython(mark, unmark)]
