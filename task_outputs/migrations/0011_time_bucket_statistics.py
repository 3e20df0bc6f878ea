"""Statistics on the hour and day buckets of GET /task-outputs/stats (PostgreSQL).

Grouped by `hour` or `day`, a stats query groups by `date_trunc(..., created_at AT TIME ZONE 'UTC')`. Without
statistics on that expression the planner guesses that nearly every row is a group of its own, and so sorts
every row and merges them in the leader instead of counting them in a hash table in each parallel worker:
over a million outputs, 1.3 s against 0.6 s (docs/performance.md, "Stats, fourth round"). ANALYZE
(autovacuum's included) now also counts the buckets' distinct values.
"""

from django.db import migrations

BUCKETS = ("hour", "day")


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for bucket in BUCKETS:
        schema_editor.execute(
            f"CREATE STATISTICS task_out_{bucket}_bucket ON (date_trunc('{bucket}', created_at AT TIME ZONE 'UTC'))"
            " FROM task_outputs_taskoutput"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for bucket in BUCKETS:
        schema_editor.execute(f"DROP STATISTICS task_out_{bucket}_bucket")


class Migration(migrations.Migration):
    dependencies = [("task_outputs", "0010_stats_aggregate")]

    operations = [migrations.RunPython(create, drop)]
