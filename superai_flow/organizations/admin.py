"""Admin for organizations, memberships and API keys (created here, shown once, revocable)."""

from __future__ import annotations

from django.contrib import admin, messages

from superai_flow.admin_base import OrganizationScopedAdmin
from superai_flow.organizations.models import APIKey, Membership, Organization
from superai_flow.organizations.services import api_key_create, api_key_revoke


class MembershipInline(admin.TabularInline):
    model = Membership
    raw_id_fields = ["user"]
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    organization_path = "pk"
    list_display = ["name", "id", "created_at"]
    search_fields = ["name", "=id"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [MembershipInline]

    def has_add_permission(self, request):
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(OrganizationScopedAdmin):
    list_display = ["user", "organization", "created_at"]
    list_select_related = ["user", "organization"]
    list_filter = ["organization"]
    search_fields = ["user__username", "organization__name"]
    raw_id_fields = ["user"]


@admin.register(APIKey)
class APIKeyAdmin(OrganizationScopedAdmin):
    """Adding a key shows it once, in a message; only its hash is kept. Revoked keys stop working at once."""

    list_display = ["name", "organization", "scopes", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["organization"]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "organization__name"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "name", "scopes"]
        return ["name", "organization", "scopes", "prefix", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["organization", "prefix", "created_at", "last_used_at", "revoked_at"]

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the record stays for audit

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, raw_key = api_key_create(organization=obj.organization, name=obj.name, scopes=obj.scopes)
        obj.pk = api_key.pk
        self.message_user(
            request,
            f"The new API key is {raw_key} — copy it now: it is shown only this once.",
            messages.WARNING,
        )

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} API key(s).", messages.SUCCESS)
