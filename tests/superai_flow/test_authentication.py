"""Bearer API keys and Django sessions, and what each may see."""

from __future__ import annotations

import io
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache, caches
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from superai_flow.organizations import services
from superai_flow.organizations.models import APIKey, Membership
from superai_flow.organizations.services import api_key_create, api_key_revoke
from tests.helpers import bearer_client, error_of
from tests.task_outputs.test_create import URL, body_for


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token sfk_abc",
        "Bearer sfk_short",
        "Bearer sfk_" + "A" * 43,
        "Bearer not a key at all",
        "Bearer sfk_" + "\x00" * 43,
        "bearer" + " " * 50,
    ],
)
def test_garbage_authorization_headers_are_401(client_a, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(URL)

    error_of(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_the_bearer_scheme_is_case_insensitive(org_a, key_a):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"bearer {key_a}")

    assert client.get(URL).status_code == 200


def test_a_revoked_key_is_refused_at_once(org_a, key_a):
    client = bearer_client(key_a)
    assert client.get(URL).status_code == 200

    api_key_revoke(api_key=APIKey.objects.get(organization=org_a))

    error_of(client.get(URL), 401, "authentication_failed")


def test_only_a_hash_of_the_key_is_stored(org_a):
    api_key, raw_key = api_key_create(organization=org_a, name="x")

    stored = APIKey.objects.filter(pk=api_key.pk).values().get()
    assert raw_key not in {str(value) for value in stored.values()}
    assert raw_key.startswith(api_key.prefix)


def test_last_used_is_recorded_at_most_once_a_minute(org_a, key_a, monkeypatch):
    client = bearer_client(key_a)
    client.get(URL)
    first = APIKey.objects.get().last_used_at
    client.get(URL)

    assert first is not None
    assert APIKey.objects.get().last_used_at == first

    later = first + timedelta(minutes=1, seconds=1)
    monkeypatch.setattr(services.timezone, "now", lambda: later)
    client.get(URL)
    assert APIKey.objects.get().last_used_at == later


def revoke_elsewhere(api_key_id) -> None:
    """What another server process's revocation looks like from here: the row changes, no signal comes."""
    APIKey.objects.filter(pk=api_key_id).update(revoked_at=timezone.now())


def test_a_key_revoked_by_another_process_stops_working_within_the_cache_time(org_a, key_a, monkeypatch):
    client = bearer_client(key_a)
    assert client.get(URL).status_code == 200
    revoke_elsewhere(APIKey.objects.get(organization=org_a).pk)

    assert client.get(URL).status_code == 200  # still trusted: looked up less than 5 s ago
    clock = time.monotonic() + settings.API_KEY_CACHE_SECONDS
    monkeypatch.setattr(services.time, "monotonic", lambda: clock)
    error_of(client.get(URL), 401, "authentication_failed")


def test_with_no_cache_time_every_request_looks_the_key_up(org_a, key_a, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    client = bearer_client(key_a)
    assert client.get(URL).status_code == 200
    revoke_elsewhere(APIKey.objects.get(organization=org_a).pk)

    error_of(client.get(URL), 401, "authentication_failed")


def test_the_key_cache_never_outgrows_its_bound(org_a, monkeypatch):
    monkeypatch.setattr(services._RecentKeys, "MAX_ENTRIES", 3)
    keys = [api_key_create(organization=org_a, name=f"k{i}")[1] for i in range(5)]

    for key in keys:
        assert bearer_client(key).get(URL).status_code == 200
        assert len(services._recent_keys._entries) <= 3


@pytest.fixture
def member(org_a) -> User:
    user = User.objects.create_user("alice", password="pw")
    Membership.objects.create(user=user, organization=org_a)
    return user


def session_client(user, *, enforce_csrf=False) -> APIClient:
    client = APIClient(enforce_csrf_checks=enforce_csrf)
    client.force_login(user)
    return client


def test_a_signed_in_member_sees_their_organizations_outputs(member, flow_a, flow_b, make_output):
    mine = make_output(flow_a)
    make_output(flow_b)

    response = session_client(member).get(URL)

    assert [row["id"] for row in response.json()["results"]] == [str(mine.id)]


def test_a_signed_in_user_without_memberships_sees_nothing(flow_a, make_output):
    make_output(flow_a)
    loner = User.objects.create_user("bob", password="pw")

    assert session_client(loner).get(URL).json()["results"] == []


def test_a_superuser_sees_every_organization(flow_a, flow_b, make_output):
    make_output(flow_a)
    make_output(flow_b)
    root = User.objects.create_superuser("root", password="pw")

    assert len(session_client(root).get(URL).json()["results"]) == 2


def test_a_session_post_needs_a_csrf_token(member, flow_a):
    client = session_client(member, enforce_csrf=True)

    error_of(client.post(URL, body_for(flow_a)), 403, "permission_denied")

    client.get("/admin/login/")  # any page that sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    assert client.post(URL, body_for(flow_a), HTTP_X_CSRFTOKEN=token).status_code == 201


def test_a_member_of_two_organizations_cannot_mix_them(member, org_b, flow_a):
    Membership.objects.create(user=member, organization=org_b)

    response = session_client(member).post(URL, body_for(flow_a, organization_id=str(org_b.id)))

    error_of(response, 404, "not_found")


def test_a_member_may_not_act_for_other_organizations(member, flow_b):
    error_of(session_client(member).post(URL, body_for(flow_b)), 403, "permission_denied")


# --- Key scopes ---------------------------------------------------------------------------------


@pytest.fixture
def read_only(org_a) -> APIClient:
    return bearer_client(api_key_create(organization=org_a, name="dashboard", scopes="read")[1])


@pytest.fixture
def write_only(org_a) -> APIClient:
    return bearer_client(api_key_create(organization=org_a, name="worker", scopes="write")[1])


def test_a_read_only_key_reads_but_cannot_write(read_only, flow_a, make_output):
    output = make_output(flow_a)

    assert read_only.get(URL).status_code == 200
    for response in (
        read_only.post(URL, body_for(flow_a)),
        read_only.patch(f"{URL}/{output.id}", {"status": "deleted"}),
        read_only.delete(f"{URL}/{output.id}"),
        read_only.post("/api/v1/flow-executions", {"organization_id": str(flow_a.organization_id), "flow_name": "x"}),
    ):
        body = error_of(response, 403, "permission_denied")
        assert "only read" in body["error"]["message"]
    output.refresh_from_db()
    assert output.status == "queued"


def test_a_write_only_key_writes_but_cannot_read(write_only, flow_a):
    assert write_only.post(URL, body_for(flow_a)).status_code == 201
    assert "may not read" in error_of(write_only.get(URL), 403, "permission_denied")["error"]["message"]


def test_create_api_key_makes_read_only_keys(org_a, flow_a):
    out = io.StringIO()
    call_command("create_api_key", org_a.name, "--scopes", "read", stdout=out, stderr=io.StringIO())
    client = bearer_client(out.getvalue().strip().splitlines()[-1])

    assert client.get(URL).status_code == 200
    error_of(client.post(URL, body_for(flow_a)), 403, "permission_denied")
    assert APIKey.objects.get(organization=org_a, name="default").scopes == "read"


# --- Rate limits --------------------------------------------------------------------------------


@pytest.fixture
def low_limit(settings):
    settings.API_RATE_LIMIT = "3/minute"
    cache.clear()
    yield
    cache.clear()


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(low_limit, client_a, client_b):
    answers = [client_a.get(URL).status_code for _ in range(3)]
    over = client_a.get(URL)

    assert answers == [200, 200, 200]
    error_of(over, 429, "throttled")
    # The window slides: the requests of this minute still weigh on the start of the next one.
    assert 1 <= int(over["Retry-After"]) <= 120
    assert client_b.get(URL).status_code == 200  # each key has its own budget


def test_the_limit_slides_over_the_end_of_a_window(low_limit, client_a, monkeypatch):
    clock = [60 * 29_000_000 + 30.0]  # half-way through a minute
    monkeypatch.setattr("superai_flow.throttling.time.time", lambda: clock[0])
    assert [client_a.get(URL).status_code for _ in range(3)] == [200, 200, 200]

    clock[0] += 40  # 10 s into the next minute, 5/6 of the last one's 3 requests still count: 2.5 + 1 > 3
    refused = client_a.get(URL)
    clock[0] += 20  # 30 s in, half of them do: 1.5 + 1 <= 3
    allowed = client_a.get(URL)

    error_of(refused, 429, "throttled")
    assert int(refused["Retry-After"]) == 10  # when 1.5 of them are left
    assert allowed.status_code == 200


def test_the_limit_is_configurable_and_can_be_lifted(settings, client_a):
    settings.API_RATE_LIMIT = ""

    assert all(client_a.get(URL).status_code == 200 for _ in range(10))


@pytest.mark.redis
def test_with_redis_the_limit_is_counted_in_redis(settings):
    assert type(caches["default"]).__name__ == "RedisCache"
    assert settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL
