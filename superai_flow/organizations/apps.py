from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class OrganizationsConfig(AppConfig):
    """Tenants, who belongs to them, and the API keys that act for them."""

    name = "superai_flow.organizations"
    label = "organizations"
    verbose_name = "Organizations"

    def ready(self) -> None:
        from superai_flow import checks  # noqa: F401  (registers the system checks)
        from superai_flow.organizations.models import APIKey
        from superai_flow.organizations.services import forget_api_key
        from superai_flow.tenancy import grant_after_migrate

        post_migrate.connect(grant_after_migrate, dispatch_uid="grant_runtime_privileges")
        post_save.connect(forget_api_key, sender=APIKey, dispatch_uid="forget_saved_api_key")
        post_delete.connect(forget_api_key, sender=APIKey, dispatch_uid="forget_deleted_api_key")
