"""`manage.py summary_sort_index add|remove|list [summary.<path>]`: indexes for `ordering=summary.<path>`.

No index can serve ordering by any key of any summary, so without one each page sorts every output its
filters leave (docs/performance.md: hundreds of milliseconds over a million outputs of one organization).
For the few keys a deployment ranks by often, this adds two expression indexes (one per direction) on
exactly the expressions the ordering sorts by (superai_flow.json_queries: the kind, the number, the text),
led by the organization and ended by the list's own tie-breakers (created_at, id): a page then reads its
rows from the index in order and stops after one page. PostgreSQL only; built CONCURRENTLY, so writes go
on meanwhile; run as the role that owns the tables (the migrations' database alias, `owner`, when
DATABASE_MIGRATION_URL is set). Each index carries a comment naming its path, which `list` shows.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from superai_flow.json_queries import JSONPathKind, JSONPathNumber, JSONPathText, json_path
from task_outputs.models import TaskOutput

COMMENT = "superai_flow summary sort index: "
PREFIX = "task_out_sort_"
TABLE = TaskOutput._meta.db_table


def index_names(path: list[str]) -> dict[str, str]:
    """The two indexes' names for `path` (a hash of it: paths may be long or hold any character)."""
    digest = hashlib.sha256(".".join(path).encode()).hexdigest()[:16]
    return {"asc": f"{PREFIX}{digest}_a", "desc": f"{PREFIX}{digest}_d"}


def sort_expressions(connection, path: list[str]) -> list[str]:
    """The ordering's three sort keys for `path` as SQL, compiled by the same code the list's ORDER BY is."""
    query = TaskOutput.objects.all().query
    compiler = query.get_compiler(connection=connection)
    expressions = []
    for expression in (JSONPathKind("summary", path), JSONPathNumber("summary", path), JSONPathText("summary", path)):
        sql, params = compiler.compile(expression.resolve_expression(query))
        expressions.append(connection.ops.compose_sql(sql, params))
    return expressions


def create_statements(connection, path: list[str]) -> list[tuple[str, str, str]]:
    """(direction, name, CREATE INDEX) per direction: the kind always ascending (the rest last either way), then
    the number, the text, created_at and id in the direction's order, as JSONKeysetOrderingFilter sorts."""
    kind, number, text = sort_expressions(connection, path)
    statements = []
    for direction, name in index_names(path).items():
        order = " DESC" if direction == "desc" else ""
        columns = ", ".join(
            ["organization_id", kind, f"({number}){order}", f"({text}){order}", f"created_at{order}", f"id{order}"]
        )
        statements.append((direction, name, f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {TABLE} ({columns})"))
    return statements


class Command(BaseCommand):
    help = (
        "Add, remove or list the indexes that make ordering=summary.<path> read one page from an index instead "
        "of sorting every output (PostgreSQL). Built CONCURRENTLY: writes go on meanwhile."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=("add", "remove", "list"))
        parser.add_argument("path", nargs="?", metavar="summary.<path>", help="e.g. summary.score, summary.stats.ms")
        parser.add_argument(
            "--database",
            default="owner" if "owner" in settings.DATABASES else "default",
            help="The database alias to use: the tables' owner may create indexes (default: %(default)s).",
        )

    def handle(self, *args, action: str, path: str | None, database: str, **options):
        connection = connections[database]
        if connection.vendor != "postgresql":
            raise CommandError(
                "Summary sort indexes are for PostgreSQL; on SQLite (the embedded default) ordering sorts in memory."
            )
        if action == "list":
            self.list(connection)
            return
        keys = json_path(path.removeprefix("summary.")) if path and path.startswith("summary.") else None
        if keys is None:
            raise CommandError(f"Give the path as summary.<key>, dotted for nested keys (got {path!r}).")
        if action == "add":
            self.add(connection, keys)
        else:
            self.remove(connection, keys)

    def add(self, connection, keys: list[str]) -> None:
        label = "summary." + ".".join(keys)
        with connection.cursor() as cursor:
            for direction, name, statement in create_statements(connection, keys):
                self.stdout.write(f"Creating {name} for ordering by {label} ... (concurrently; this reads the table)")
                if self._invalid(cursor, name):
                    cursor.execute(f"DROP INDEX CONCURRENTLY {name}")
                cursor.execute(statement)
                described = f"{COMMENT}{label} {'descending' if direction == 'desc' else 'ascending'}"
                comment = connection.ops.compose_sql("%s", [described])  # COMMENT takes no parameters
                cursor.execute(f"COMMENT ON INDEX {name} IS {comment}")
        self.stdout.write(self.style.SUCCESS(f"ordering={label} and ordering=-{label} can now read from an index."))

    def remove(self, connection, keys: list[str]) -> None:
        with connection.cursor() as cursor:
            for name in index_names(keys).values():
                cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        self.stdout.write(f"Removed the sort indexes of summary.{'.'.join(keys)} (if there were any).")

    def list(self, connection) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT c.relname, obj_description(c.oid, 'pg_class'), pg_relation_size(c.oid), i.indisvalid"
                " FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid"
                " WHERE i.indrelid = %s::regclass AND starts_with(c.relname::text, %s) ORDER BY 2, 1",
                [TABLE, PREFIX],
            )
            rows = cursor.fetchall()
        if not rows:
            self.stdout.write("No summary sort indexes.")
        for name, comment, size, valid in rows:
            # An interrupted build leaves its index INVALID, and before its comment was written.
            path = comment.removeprefix(COMMENT) if comment else "(path unknown)"
            state = "" if valid else "  INVALID (an interrupted build: run add again, or remove)"
            self.stdout.write(f"{path}  {name}  {size / 2**20:.1f} MiB{state}")

    @staticmethod
    def _invalid(cursor, name: str) -> bool:
        """An index left INVALID by an interrupted CONCURRENTLY build, which IF NOT EXISTS would keep."""
        cursor.execute("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", [name])
        row = cursor.fetchone()
        return bool(row and row[0])
