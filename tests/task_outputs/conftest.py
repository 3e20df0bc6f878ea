"""What the page tests share: a signed-in member of org_a and her browser (Django's test client)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from superai_flow.organizations.models import Membership


@pytest.fixture
def alice(org_a) -> User:
    user = User.objects.create_user("alice", password="correct horse battery")
    Membership.objects.create(user=user, organization=org_a)
    return user


@pytest.fixture
def browser(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client
