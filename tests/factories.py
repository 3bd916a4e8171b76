from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from billing.models import RequestLog
from gateway.models import ModelDeployment
from tenants.models import Membership, Organization, Role, Team, User


class OrganizationFactory(DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class TeamFactory(DjangoModelFactory):
    class Meta:
        model = Team

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    team = None
    role = Role.MEMBER


class ModelDeploymentFactory(DjangoModelFactory):
    class Meta:
        model = ModelDeployment

    model_name = factory.Sequence(lambda n: f"model-{n}")
    provider = "mock"
    upstream_model = factory.LazyAttribute(lambda o: o.model_name)


class RequestLogFactory(DjangoModelFactory):
    """One finished /v1 request: a successful chat completion on `mock-chat` unless told."""

    class Meta:
        model = RequestLog

    request_id = factory.Sequence(lambda n: f"req-{n}")
    created_at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    endpoint = "chat/completions"
    model = "mock-chat"
    provider = "mock"
    deployment = factory.LazyAttribute(lambda o: f"config:{o.model}:0")
    status_code = 200
    prompt_tokens = 0
    completion_tokens = 0
    total_tokens = factory.LazyAttribute(lambda o: o.prompt_tokens + o.completion_tokens)
    cost = Decimal("0")
    latency_ms = 0
