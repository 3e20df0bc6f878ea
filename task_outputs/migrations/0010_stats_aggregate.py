"""An aggregate for GET /task-outputs/stats that runs in parallel workers (PostgreSQL).

`superai_number_stats(float8)` gives a metric's [count, min, max, sum, p50, p95] per group. Its state is
the group's numbers in an array: each parallel worker collects its share (`array_append`), the leader
joins the shares (`array_cat`), and the final function sorts each group's numbers once and reads all six
figures from them. `percentile_cont` is an ordered-set aggregate, which PostgreSQL runs only in the
leader, over rows sorted for it: every row then went through one sorted merge in the leader
(docs/performance.md, "Stats, fourth round"). One aggregate also computes the metric's expression once
per row, where count, min, max and sum beside it would each compute it again.

The percentiles interpolate between the closest ranks, as `percentile_cont` does; the sum adds the numbers
in ascending order, so that the same outputs always give the same sum to the last digit. NULLs (outputs
without a number there) are skipped. `unnest` stands in select lists, not in FROM: a set-returning
function in FROM first copies all its rows into a tuple store (a million numbers: 75 ms against 250).
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION superai_percentile(sorted float8[], n integer, fraction float8) RETURNS float8
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT sorted[1 + floor(fraction * (n - 1))::integer]
           + (sorted[1 + ceil(fraction * (n - 1))::integer] - sorted[1 + floor(fraction * (n - 1))::integer])
             * (fraction * (n - 1) - floor(fraction * (n - 1)))
$$;

CREATE FUNCTION superai_number_stats_final(numbers float8[]) RETURNS float8[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN n = 0 THEN ARRAY[0, NULL, NULL, NULL, NULL, NULL]::float8[]
                ELSE ARRAY[n, sorted[1], sorted[n], (SELECT sum(x) FROM (SELECT unnest(sorted) AS x) AS u),
                           superai_percentile(sorted, n, 0.5), superai_percentile(sorted, n, 0.95)] END
    FROM (SELECT sorted, coalesce(cardinality(sorted), 0) AS n
          FROM (SELECT array_agg(x ORDER BY x) AS sorted
                FROM (SELECT unnest(numbers) AS x) AS u WHERE x IS NOT NULL) AS s) AS t
$$;

CREATE AGGREGATE superai_number_stats(float8) (
    SFUNC = array_append, STYPE = float8[], INITCOND = '{}',
    COMBINEFUNC = array_cat, FINALFUNC = superai_number_stats_final, PARALLEL = SAFE
);
"""

DROP = """
DROP AGGREGATE superai_number_stats(float8);
DROP FUNCTION superai_number_stats_final(float8[]);
DROP FUNCTION superai_percentile(float8[], integer, float8);
"""


def run(sql: str):
    def operation(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return operation


class Migration(migrations.Migration):
    dependencies = [("task_outputs", "0009_policy_scope_once_per_query")]

    operations = [migrations.RunPython(run(CREATE), run(DROP))]
