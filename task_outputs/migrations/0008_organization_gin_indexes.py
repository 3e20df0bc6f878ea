"""The `tag` and `summary.<key>=` GIN indexes lead with the organization (PostgreSQL, with btree_gin).

The single-column GIN indexes of 0002 found every matching row of every organization, whose heap pages
were then read and filtered by organization: `tag=` and `summary.<key>=` grew with the whole table, not
with the caller's rows. `gin (organization_id, tags jsonb_path_ops)` finds only the caller's (btree_gin,
a contrib extension shipped with PostgreSQL, indexes the uuid column in a GIN index). Two organizations
of a million rows each: a rare tag 14.3 -> 6.0 ms, a summary value in 1% of the rows 104.8 -> 39.4 ms
(docs/performance.md).

btree_gin is a trusted extension: the migrating role needs CREATE on the database (its owner has it), or
a superuser creates the extension beforehand. Without it the migration keeps 0002's indexes and says how to
move on once the extension exists.
"""

import logging

from django.db import DatabaseError, migrations, transaction

logger = logging.getLogger(__name__)

INDEXES = [  # (new, old, column)
    ("task_out_org_tags_gin", "task_out_tags_gin", "tags"),
    ("task_out_org_summary_gin", "task_out_summary_gin", "summary"),
]


def lead_with_the_organization(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    except DatabaseError as exc:
        logger.warning(
            "Keeping the single-column GIN indexes of task outputs: the btree_gin extension could not be created "
            "(%s). To index by organization: CREATE EXTENSION btree_gin as a superuser, then "
            "`manage.py migrate task_outputs 0007` and `manage.py migrate`.",
            exc,
        )
        return
    for new, old, column in INDEXES:
        columns = f"organization_id, {column} jsonb_path_ops"
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {new} ON task_outputs_taskoutput USING gin ({columns})")
        schema_editor.execute(f"DROP INDEX IF EXISTS {old}")


def back_to_single_columns(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for new, old, column in INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {old} ON task_outputs_taskoutput USING gin ({column} jsonb_path_ops)"
        )
        schema_editor.execute(f"DROP INDEX IF EXISTS {new}")


class Migration(migrations.Migration):
    dependencies = [("task_outputs", "0007_insert_function")]

    operations = [migrations.RunPython(lead_with_the_organization, back_to_single_columns)]
