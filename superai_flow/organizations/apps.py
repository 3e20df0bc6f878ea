from django.apps import AppConfig


class OrganizationsConfig(AppConfig):
    """Tenants, who belongs to them, and the API keys that act for them."""

    name = "superai_flow.organizations"
    label = "organizations"
    verbose_name = "Organizations"
