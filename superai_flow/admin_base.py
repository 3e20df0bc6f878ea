"""What every admin page of the project shares: organization scoping, counts that stay cheap on huge
tables, a free-text list filter, and read-only pretty JSON."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.utils.html import format_html

from superai_flow.exceptions import APIError
from superai_flow.organizations.models import Organization
from superai_flow.organizations.selectors import organization_ids_for_user

# Pretty JSON beyond this many characters is cut on admin pages (the API has it all).
ADMIN_JSON_CHARS = 100_000


class CappedCountPaginator(Paginator):
    """Counts at most `cap` + 1 rows: an exact count of millions of rows would cost more than the page."""

    cap = 10_000

    @cached_property
    def count(self) -> int:
        # Without the ordering, the database stops after `cap` + 1 rows instead of sorting them all.
        return self.object_list.order_by()[: self.cap + 1].count()


class OrganizationScopedAdmin(admin.ModelAdmin):
    """Staff who are not superusers see and pick only the organizations they are members of."""

    organization_path = "organization"
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice is a full scan per choice

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.organization_path}__in": organization_ids_for_user(request.user)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Organization and not request.user.is_superuser:
            kwargs["queryset"] = Organization.objects.filter(pk__in=organization_ids_for_user(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ExactTextFilter(admin.SimpleListFilter):
    """A sidebar text box that filters a field by exact value (no list of choices to compute)."""

    template = "admin/text_filter.html"
    field_name = ""

    def lookups(self, request, model_admin):
        return (("", ""),)  # the sidebar shows the filter only when it has lookups

    def choices(self, changelist):
        """One "choice": the other parameters of the page, which the text box's form keeps."""
        kept = []
        for name, values in changelist.params.items():
            if name != self.parameter_name:
                kept += [(name, value) for value in (values if isinstance(values, list) else [values])]
        yield {"selected": self.value() is not None, "query_parts": kept, "query_string": "", "display": ""}

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.field_name: value}) if value else queryset


def pretty_json(value: Any):
    """Read-only JSON for change pages: indented, escaped, cut at ADMIN_JSON_CHARS."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) > ADMIN_JSON_CHARS:
        note = f"\n… {len(text) - ADMIN_JSON_CHARS:,} more characters (GET the record from the API for all of it)"
        text = text[:ADMIN_JSON_CHARS] + note
    return format_html('<pre style="white-space: pre-wrap; max-height: 40rem; overflow: auto">{}</pre>', text)


def run_action(model_admin, request, queryset, change, done: str) -> None:
    """Apply `change(record)` to each selected record through the services; report what worked and what not."""
    applied, refused = 0, []
    for record in queryset:
        try:
            change(record)
        except APIError as exc:
            refused.append(f"{record}: {exc.message}")
        else:
            applied += 1
    if applied:
        model_admin.message_user(request, f"{done}: {applied}.", messages.SUCCESS)
    for reason in refused[:20]:
        model_admin.message_user(request, reason, messages.WARNING)
    if len(refused) > 20:
        model_admin.message_user(request, f"… and {len(refused) - 20} more were refused.", messages.WARNING)


def actor(request) -> str:
    """`modified_by` for changes made in admin."""
    return f"user:{request.user.pk}"
