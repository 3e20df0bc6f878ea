from django.apps import AppConfig
from django.db.models.signals import post_migrate


class OrganizationsConfig(AppConfig):
    """Tenants, who belongs to them, and the API keys that act for them."""

    name = "superai_flow.organizations"
    label = "organizations"
    verbose_name = "Organizations"

    def ready(self) -> None:
        from superai_flow import checks  # noqa: F401  (registers the system checks)
        from superai_flow.tenancy import grant_after_migrate

        post_migrate.connect(grant_after_migrate, dispatch_uid="grant_runtime_privileges")
