"""Admin for organizations, memberships and API keys."""

from django.contrib import admin, messages

from superai_flow.organizations.models import APIKey, Membership, Organization
from superai_flow.organizations.services import api_key_revoke


class MembershipInline(admin.TabularInline):
    model = Membership
    raw_id_fields = ["user"]
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "created_at"]
    search_fields = ["name", "=id"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "created_at"]
    list_select_related = ["user", "organization"]
    list_filter = ["organization"]
    search_fields = ["user__username", "organization__name"]
    raw_id_fields = ["user", "organization"]


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    """Keys are created with `manage.py create_api_key`, which shows the key once; admin lists and revokes."""

    list_display = ["name", "organization", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["organization"]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "organization__name"]
    readonly_fields = ["organization", "prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", *readonly_fields]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset):
        for api_key in queryset:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"Revoked {queryset.count()} API key(s).", messages.SUCCESS)
