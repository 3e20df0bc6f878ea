"""`manage.py create_api_key ORG_NAME_OR_ID [--name LABEL] [--scopes read-write|read|write]`.

Prints the new key as the last line of stdout.
"""

from django.core.management.base import CommandError

from superai_flow.commands import SystemCommand
from superai_flow.organizations.selectors import organization_by_name_or_id
from superai_flow.organizations.services import api_key_create


class Command(SystemCommand):
    help = "Create an API key for an organization. The key is printed once, as the last line; store it now."

    def add_arguments(self, parser):
        parser.add_argument("organization", help="The organization's name or id.")
        parser.add_argument("--name", default="default", help="A label to tell keys apart (default: 'default').")
        parser.add_argument(
            "--scopes",
            choices=["read-write", "read", "write"],
            default="read-write",
            help="What the key may do: read (lists, records, live feeds), write (create and change), or both.",
        )

    def handle(self, *args, organization: str, name: str, scopes: str, **options):
        found = organization_by_name_or_id(organization)
        if found is None:
            raise CommandError(f"No organization has the name or id {organization!r}.")
        if not name.strip() or len(name) > 100:
            raise CommandError("The label must have 1 to 100 characters and not be blank.")
        api_key, raw_key = api_key_create(organization=found, name=name, scopes=scopes.replace("-", " "))
        self.stderr.write(
            f"Created API key {api_key.name!r} ({api_key.prefix}…, {api_key.get_scopes_display()}) for {found.name!r}. "
            "It is shown only now; only its hash is stored."
        )
        self.stdout.write(raw_key)
