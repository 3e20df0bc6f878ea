"""Organizations (tenants), their members and their API keys."""

from __future__ import annotations

from django.conf import settings
from django.db import models, transaction

from superai_flow import tenancy
from superai_flow.db import TimestampedModel


class Organization(TimestampedModel):
    """A tenant. Every flow execution, task execution and task output belongs to exactly one."""

    name = models.CharField(max_length=200, unique=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(name__regex=r"\S"), name="%(app_label)s_%(class)s_name_not_blank"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            super().save(*args, **kwargs)
            return
        with transaction.atomic(using=kwargs.get("using")):  # whoever creates an organization may write it
            tenancy.include_in_scope(self.pk)
            super().save(*args, **kwargs)


class Membership(TimestampedModel):
    """A user's membership of an organization: what they may see and act for when signed in."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")

    class Meta:
        ordering = ["organization__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="%(app_label)s_%(class)s_unique_user_org"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization}"


class APIKey(TimestampedModel):
    """A secret that acts for one organization. Only its SHA-256 is stored; the key is shown once."""

    class Scopes(models.TextChoices):
        READ_WRITE = "read write", "read and write"
        READ = "read", "read only"
        WRITE = "write", "write only"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="A label to tell keys apart, e.g. the worker that uses it.")
    scopes = models.CharField(
        max_length=20,
        choices=Scopes.choices,
        default=Scopes.READ_WRITE,
        help_text="Reading lists, records and live feeds; writing creates and changes records.",
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="The key's first characters.")
    key_hash = models.CharField(max_length=64, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["organization__name", "-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_read(self) -> bool:
        return "read" in self.scopes.split()

    @property
    def can_write(self) -> bool:
        return "write" in self.scopes.split()

    @property
    def identity(self) -> str:
        """How this key appears in `modified_by` and logs (its id: nothing of the secret)."""
        return f"api_key:{self.id}"
