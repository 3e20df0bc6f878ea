"""GIN indexes for the `tag` and `summary.<key>=` filters (jsonb containment); PostgreSQL only.

SQLite has no GIN indexes and keeps scanning within the organization's btree range.
"""

from django.db import migrations

GIN_INDEXES = [("task_out_tags_gin", "tags"), ("task_out_summary_gin", "summary")]


def create_gin_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, column in GIN_INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON task_outputs_taskoutput USING gin ({column} jsonb_path_ops)"
        )


def drop_gin_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in GIN_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("task_outputs", "0001_initial")]

    operations = [migrations.RunPython(create_gin_indexes, drop_gin_indexes)]
