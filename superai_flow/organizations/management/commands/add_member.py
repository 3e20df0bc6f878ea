"""`manage.py add_member ORG_NAME_OR_ID USERNAME`: make a user a member of an organization.

Prints nothing on success (scripts can rely on that); errors go to stderr with a non-zero exit.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from superai_flow.commands import SystemCommand
from superai_flow.organizations.models import Membership
from superai_flow.organizations.selectors import organization_by_name_or_id


class Command(SystemCommand):
    help = "Make USERNAME a member of an organization (by name or id), so they see its executions."

    def add_arguments(self, parser):
        parser.add_argument("organization", help="The organization's name or id.")
        parser.add_argument("username", help="An existing user's username.")

    def handle(self, *args, organization: str, username: str, **options):
        found = organization_by_name_or_id(organization)
        if found is None:
            raise CommandError(f"No organization has the name or id {organization!r}.")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user is called {username!r}; create one with `manage.py createsuperuser`.")
        Membership.objects.get_or_create(organization=found, user=user)
