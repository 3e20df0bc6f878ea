"""`manage.py create_organization NAME`: prints the new organization's id as the last line of stdout."""

from django.core.management.base import CommandError

from superai_flow.commands import SystemCommand
from superai_flow.organizations.models import Organization
from superai_flow.organizations.services import organization_create


class Command(SystemCommand):
    help = "Create an organization (a tenant). Prints its id as the last line of output."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The organization's name (unique, up to 200 characters).")

    def handle(self, *args, name: str, **options):
        if not name.strip() or len(name) > 200:
            raise CommandError("The name must have 1 to 200 characters and not be blank.")
        if Organization.objects.filter(name=name).exists():
            raise CommandError(f"An organization named {name!r} already exists.")
        organization = organization_create(name=name)
        self.stderr.write(f"Created organization {organization.name!r}.")
        self.stdout.write(str(organization.id))
