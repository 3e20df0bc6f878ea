"""`tag=` walks the newest outputs first: a table of (organization, tag, created_at, output) rows (PostgreSQL).

The GIN index on tags returns every output of the caller's with the tag, which are then fetched and sorted
before the first page: a tag on one output in a thousand costs more the more outputs the organization has
(docs/performance.md, "A rare tag"). `task_outputs_tag` holds one row per tag of each output, keyed by
(organization_id, tag, created_at, task_output_id): a list filtered by a tag reads that key backwards from
the newest and fetches only the outputs of the page (task_outputs.selectors.with_tags).

Triggers keep it exact in every write path (the API, admin, management commands): rows are added with an
output (a row trigger, which an output without tags skips), replaced when its tags, organization or creation
time change, and removed with it (a statement trigger: a purge deletes thousands of outputs at once). A
create with tags costs PostgreSQL about 30 µs more per create, and each tag about 170 bytes of table and
index (docs/performance.md). Tags longer than
the filter accepts (100 characters) are left out: no query can name them. The table is a tenant table like
the others (row-level security, enabled and forced); its rows are written under the scope of the statement
that writes the output.
"""

from django.db import migrations, models

TABLE = "task_outputs_tag"
SCOPE = "(SELECT string_to_array(current_setting('superai.organization_ids', true), ',')::uuid[])::uuid[]"

# The new or changed output, as a table of one row.
NEW_ROW = "(SELECT NEW.organization_id AS organization_id, NEW.tags AS tags, NEW.created_at AS created_at, NEW.id AS id)"
# The (string) tags of `source`'s outputs, as rows of this table.
TAG_ROWS = """
    SELECT DISTINCT source.organization_id, element #>> '{{}}', source.created_at, source.id
    FROM {source} AS source,
         jsonb_array_elements(CASE jsonb_typeof(source.tags) WHEN 'array' THEN source.tags ELSE '[]' END) AS element
    WHERE jsonb_typeof(element) = 'string' AND char_length(element #>> '{{}}') <= 100
"""

CREATE = f"""
CREATE TABLE {TABLE} (
    organization_id uuid NOT NULL,
    tag text NOT NULL,
    created_at timestamptz NOT NULL,
    task_output_id uuid NOT NULL
);
ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON {TABLE} USING (organization_id = ANY ({SCOPE}))
    WITH CHECK (organization_id = ANY ({SCOPE}));

CREATE FUNCTION superai_tags_written() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM public.{TABLE} WHERE organization_id = OLD.organization_id AND created_at = OLD.created_at
            AND task_output_id = OLD.id AND tag IN (SELECT jsonb_array_elements_text(
                CASE jsonb_typeof(OLD.tags) WHEN 'array' THEN OLD.tags ELSE '[]' END));
    END IF;
    INSERT INTO public.{TABLE} (organization_id, tag, created_at, task_output_id)
    {TAG_ROWS.format(source=NEW_ROW)};
    RETURN NULL;
END $$;

CREATE FUNCTION superai_tags_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM public.{TABLE} AS t USING ({TAG_ROWS.format(source="removed")}) AS gone (organization_id, tag,
        created_at, task_output_id)
    WHERE (t.organization_id, t.tag, t.created_at, t.task_output_id)
        = (gone.organization_id, gone.tag, gone.created_at, gone.task_output_id);
    RETURN NULL;
END $$;

CREATE FUNCTION superai_tags_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE public.{TABLE};
    RETURN NULL;
END $$;

CREATE TRIGGER task_outputs_tags_added AFTER INSERT ON task_outputs_taskoutput FOR EACH ROW
    WHEN (NEW.tags IS DISTINCT FROM '[]'::jsonb) EXECUTE FUNCTION superai_tags_written();
CREATE TRIGGER task_outputs_tags_removed AFTER DELETE ON task_outputs_taskoutput
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION superai_tags_removed();
CREATE TRIGGER task_outputs_tags_changed AFTER UPDATE OF tags, organization_id, created_at
    ON task_outputs_taskoutput FOR EACH ROW
    WHEN (OLD.tags IS DISTINCT FROM NEW.tags OR OLD.organization_id IS DISTINCT FROM NEW.organization_id
          OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION superai_tags_written();
CREATE TRIGGER task_outputs_tags_truncated AFTER TRUNCATE ON task_outputs_taskoutput
    FOR EACH STATEMENT EXECUTE FUNCTION superai_tags_truncated();
"""

# The existing outputs' tags, under a scope of every organization (the table's row-level security is
# forced, so even its owner sees no rows without one; the migration's transaction ends the scope). The
# triggers exist by then: their lock on task outputs holds other writers off until the migration commits.
# The key is built after the rows, in one sorted pass: a third smaller than filled in as they came.
BACKFILL = f"""
SELECT set_config('superai.organization_ids', array_to_string(superai_organization_ids(), ','), true);
INSERT INTO {TABLE} (organization_id, tag, created_at, task_output_id)
{TAG_ROWS.format(source="task_outputs_taskoutput")};
ALTER TABLE {TABLE} ADD CONSTRAINT task_outputs_tag_pkey PRIMARY KEY (organization_id, tag, created_at, task_output_id);
ANALYZE {TABLE};
"""

DROP = f"""
DROP TRIGGER task_outputs_tags_added ON task_outputs_taskoutput;
DROP TRIGGER task_outputs_tags_removed ON task_outputs_taskoutput;
DROP TRIGGER task_outputs_tags_changed ON task_outputs_taskoutput;
DROP TRIGGER task_outputs_tags_truncated ON task_outputs_taskoutput;
DROP FUNCTION superai_tags_written(), superai_tags_removed(), superai_tags_truncated();
DROP TABLE {TABLE};
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)
        schema_editor.execute(BACKFILL)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("task_outputs", "0011_time_bucket_statistics")]

    operations = [
        migrations.CreateModel(  # the table's shape for the ORM (task_outputs.models.TaskOutputTag)
            name="TaskOutputTag",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "organization_id", "tag", "created_at", "task_output_id",
                        blank=True, editable=False, primary_key=True, serialize=False,
                    ),
                ),
                ("organization_id", models.UUIDField()),
                ("tag", models.TextField()),
                ("created_at", models.DateTimeField()),
            ],
            options={"db_table": "task_outputs_tag", "managed": False},
        ),
        migrations.RunPython(create, drop),
    ]
