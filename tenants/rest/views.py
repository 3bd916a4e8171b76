"""Organizations, teams, users and memberships on /api/v1."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.catalog import (
    guardrails_foreign_message,
    models_outside_message,
    models_unknown_message,
)
from tenants.models import MEMBERSHIP_ROLES, Membership, Organization, Role, ScimToken, Team, User
from tenants.rest.base import JSONObjectField, ScopedRelatedField, ScopedViewSet
from tenants.scim.services import scim_token_create
from tenants.selectors import (
    membership_list,
    organization_list,
    principal_can_grant,
    principal_user_id,
    scim_token_list,
    team_list,
    user_list,
)
from tenants.services import (
    membership_create,
    membership_delete,
    membership_update,
    organization_create,
    organization_delete,
    organization_update,
    team_create,
    team_delete,
    team_update,
    user_create,
    user_delete,
    user_update,
)

# Organizations


def _models_field(whose: str) -> serializers.ListField:
    return serializers.ListField(
        source="allowed_models",
        child=serializers.CharField(max_length=200),
        required=False,
        help_text=(
            f"Model names or access groups the {whose}'s keys may use; a key's own `models` "
            "must fit within it. Empty means every model."
        ),
    )


class OrganizationSerializer(serializers.ModelSerializer):
    slug = serializers.SlugField(max_length=100, required=False)
    metadata = JSONObjectField(required=False)
    models = _models_field("organization")

    class Meta:
        model = Organization
        fields = [
            "id",
            "name",
            "slug",
            "metadata",
            "models",
            "upstream_networks",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "allowed_models" in attrs:
            problem = models_unknown_message(
                entries=attrs["allowed_models"],
                organization_id=self.instance.pk if self.instance is not None else None,
            )
            if problem:
                raise serializers.ValidationError({"models": [problem]})
        if "metadata" in attrs:
            problem = guardrails_foreign_message(
                metadata=attrs["metadata"],
                organization_id=self.instance.pk if self.instance is not None else None,
            )
            if problem:
                raise serializers.ValidationError({"metadata": [problem]})
        return attrs


class ScimTokenSerializer(serializers.ModelSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret, shown this once.")

    class Meta:
        model = ScimToken
        fields = ["id", "organization", "name", "prefix", "revoked_at", "created_at", "token"]
        read_only_fields = ["id", "organization", "prefix", "revoked_at", "created_at"]


class OrganizationViewSet(ScopedViewSet):
    """Proxy admins create organizations; owners and admins change theirs; owners delete."""

    selector = staticmethod(organization_list)
    serializer_class = OrganizationSerializer
    filter_params = {"slug": "slug"}
    search_fields = ["name", "slug"]
    ordering_fields = ["name", "slug", "created_at"]
    ordering = ["name"]

    def check_create(self, data: dict[str, Any]) -> None:
        if not self.principal.is_proxy_admin:
            self.deny("Only proxy admins create organizations.")

    def check_change(self, instance: Organization) -> None:
        if not self.principal.is_org_admin(instance.pk):
            self.deny()

    def check_destroy(self, instance: Organization) -> None:
        principal = self.principal
        if not (principal.is_proxy_admin or principal.org_roles.get(instance.pk) == Role.ORG_OWNER):
            self.deny("Only the organization's owners delete it.")

    def perform_service_create(self, data: dict[str, Any]) -> Organization:
        return organization_create(**data)

    def perform_service_update(self, instance: Organization, data: dict[str, Any]) -> Organization:
        # The configuration file and IdP claims name organizations by slug: a tenant renaming
        # theirs would silently detach what the operator configured for it (as in admin).
        if data.get("slug", instance.slug) != instance.slug and not self.principal.is_proxy_admin:
            raise serializers.ValidationError(
                {"slug": ["Only proxy admins change an organization's slug."]}
            )
        networks = data.get("upstream_networks", instance.upstream_networks)
        if networks != instance.upstream_networks and not self.principal.is_proxy_admin:
            # They open the operator's network to the organization's deployments.
            self.deny("Only proxy admins set upstream_networks.")
        models = data.get("allowed_models", instance.allowed_models)
        if models != instance.allowed_models and not self.principal.is_proxy_admin:
            # The organization's bound is the operator's to set; its admins bound their teams.
            self.deny("Only proxy admins set an organization's models.")
        return organization_update(organization=instance, **data)

    def perform_service_destroy(self, instance: Organization) -> None:
        organization_delete(organization=instance)

    @extend_schema(request=ScimTokenSerializer, responses={201: ScimTokenSerializer})
    @action(detail=True, methods=["get", "post"], url_path="scim-tokens")
    def scim_tokens(self, request: Request, pk: str | None = None) -> Response:
        """List the organization's SCIM tokens, or issue one (its secret is returned once)."""
        organization = self.get_object()
        self.check_change(organization)
        if request.method == "GET":
            tokens = scim_token_list(principal=self.principal, organization=organization)
            return Response(ScimTokenSerializer(tokens, many=True).data)
        serializer = ScimTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, secret = scim_token_create(
            organization=organization, name=serializer.validated_data.get("name", "")
        )
        data = ScimTokenSerializer(token).data
        data["token"] = secret
        return Response(data, status=status.HTTP_201_CREATED)


# Teams


class TeamSerializer(serializers.ModelSerializer):
    organization = ScopedRelatedField(
        selector=organization_list, queryset=Organization.objects.all()
    )
    slug = serializers.SlugField(max_length=100, required=False)
    metadata = JSONObjectField(required=False)
    models = _models_field("team")

    class Meta:
        model = Team
        fields = [
            "id",
            "organization",
            "name",
            "slug",
            "metadata",
            "models",
            "external_id",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        # team_create/team_update check slug uniqueness inside the organization.
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None and "organization" in attrs:
            if attrs["organization"].pk != self.instance.organization_id:
                raise serializers.ValidationError(
                    {"organization": ["A team cannot move to another organization."]}
                )
            attrs.pop("organization")
        if "allowed_models" in attrs:
            organization = attrs.get("organization") or self.instance.organization
            problem = models_unknown_message(
                entries=attrs["allowed_models"], organization_id=organization.pk
            ) or models_outside_message(
                entries=attrs["allowed_models"],
                bounds=[("organization", organization.allowed_models)],
                organization_id=organization.pk,
            )
            if problem:
                raise serializers.ValidationError({"models": [problem]})
        if "metadata" in attrs:
            organization = attrs.get("organization") or self.instance.organization
            problem = guardrails_foreign_message(
                metadata=attrs["metadata"], organization_id=organization.pk
            )
            if problem:
                raise serializers.ValidationError({"metadata": [problem]})
        return attrs


class TeamViewSet(ScopedViewSet):
    """Org admins create and delete teams; team admins may rename theirs."""

    selector = staticmethod(team_list)
    serializer_class = TeamSerializer
    filter_params = {"organization": "organization_id", "slug": "slug"}
    search_fields = ["name", "slug", "organization__name"]
    ordering_fields = ["name", "created_at"]

    def check_create(self, data: dict[str, Any]) -> None:
        if not self.principal.is_org_admin(data["organization"].pk):
            self.deny("Only organization admins create teams.")

    def check_change(self, instance: Team) -> None:
        if not self.principal.is_team_admin(instance.pk, instance.organization_id):
            self.deny()

    def perform_service_update(self, instance: Team, data: dict[str, Any]) -> Team:
        models = data.get("allowed_models", instance.allowed_models)
        if models != instance.allowed_models and not self.principal.is_org_admin(
            instance.organization_id
        ):
            # A team's bound is its organization admins' to set, not its own admins'.
            self.deny("Only organization admins set a team's models.")
        return team_update(team=instance, **data)

    def check_destroy(self, instance: Team) -> None:
        if not self.principal.is_org_admin(instance.organization_id):
            self.deny("Only organization admins delete teams.")

    def perform_service_create(self, data: dict[str, Any]) -> Team:
        return team_create(**data)

    def perform_service_destroy(self, instance: Team) -> None:
        team_delete(team=instance)


# Users


class UserSerializer(serializers.ModelSerializer):
    password = serializers.CharField(
        write_only=True, required=False, style={"input_type": "password"}
    )
    is_proxy_admin = serializers.BooleanField(source="is_superuser", required=False)
    organization = ScopedRelatedField(
        selector=organization_list,
        queryset=Organization.objects.all(),
        write_only=True,
        required=False,
        help_text="On create: also make the user a member of this organization.",
    )
    role = serializers.ChoiceField(
        choices=MEMBERSHIP_ROLES, write_only=True, required=False, default=Role.MEMBER
    )

    class Meta:
        model = User
        fields = [
            "id",
            "username",
            "email",
            "display_name",
            "first_name",
            "last_name",
            "is_active",
            "is_proxy_admin",
            "password",
            "organization",
            "role",
            "date_joined",
            "last_login",
        ]
        read_only_fields = ["id", "date_joined", "last_login"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None:
            for field in ("username", "organization", "role"):
                attrs.pop(field, None)
        return attrs


class UserViewSet(ScopedViewSet):
    """Proxy admins manage every user; org admins create users in their organization.

    A user may change their own profile and password; nobody else but a proxy admin may, since a
    user can belong to several organizations.
    """

    selector = staticmethod(user_list)
    serializer_class = UserSerializer
    filter_params = {
        "organization": "memberships__organization_id",
        "team": "memberships__team_id",
        "username": "username",
        "email": "email",
    }
    search_fields = ["username", "email", "display_name"]
    ordering_fields = ["username", "date_joined"]
    ordering = ["username"]

    def filter_queryset(self, queryset: Any) -> Any:
        return super().filter_queryset(queryset).distinct()

    def check_create(self, data: dict[str, Any]) -> None:
        principal = self.principal
        if principal.is_proxy_admin:
            return
        if data.get("is_superuser"):
            self.deny("Only proxy admins create proxy admins.")
        organization = data.get("organization")
        if organization is None or not principal.is_org_admin(organization.pk):
            self.deny("Organization admins must create users in their organization.")
        if not principal_can_grant(
            principal=principal, organization_id=organization.pk, role=data["role"]
        ):
            self.deny("You cannot grant this role.")

    def check_change(self, instance: User) -> None:
        principal = self.principal
        if principal.is_proxy_admin:
            return
        if instance.pk != principal_user_id(principal=principal):
            self.deny("Only proxy admins change other users.")

    def check_destroy(self, instance: User) -> None:
        if not self.principal.is_proxy_admin:
            self.deny("Only proxy admins delete users.")

    def perform_service_update(self, instance: User, data: dict[str, Any]) -> User:
        if "is_superuser" in data and not self.principal.is_proxy_admin:
            self.deny("Only proxy admins change proxy admin status.")
        if "is_superuser" in data:
            instance.is_staff = data["is_superuser"]
            instance.is_superuser = data.pop("is_superuser")
        return user_update(user=instance, **data)

    def perform_service_create(self, data: dict[str, Any]) -> User:
        profile = {
            field: data.pop(field)
            for field in ("first_name", "last_name", "is_active")
            if field in data
        }
        user = user_create(**data)
        if profile:
            user = user_update(user=user, **profile)
        return user

    def perform_service_destroy(self, instance: User) -> None:
        user_delete(user=instance)


# Memberships


class MembershipSerializer(serializers.ModelSerializer):
    user = ScopedRelatedField(selector=user_list, queryset=User.objects.all())
    organization = ScopedRelatedField(
        selector=organization_list, queryset=Organization.objects.all(), required=False
    )
    team = ScopedRelatedField(
        selector=team_list, queryset=Team.objects.all(), required=False, allow_null=True
    )
    role = serializers.ChoiceField(choices=MEMBERSHIP_ROLES, default=Role.MEMBER)

    class Meta:
        model = Membership
        fields = ["id", "user", "organization", "team", "role", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None:
            # Only the role changes; a membership elsewhere is a new membership.
            return {"role": attrs.get("role", self.instance.role)}
        team = attrs.get("team")
        organization = attrs.get("organization")
        if team is not None:
            if organization is not None and organization.pk != team.organization_id:
                raise serializers.ValidationError(
                    {"team": ["The team belongs to another organization."]}
                )
            attrs["organization"] = team.organization
        elif organization is None:
            raise serializers.ValidationError({"organization": ["Give an organization or team."]})
        return attrs


class MembershipViewSet(ScopedViewSet):
    """Org admins manage memberships in their organization; team admins in their team."""

    selector = staticmethod(membership_list)
    serializer_class = MembershipSerializer
    filter_params = {
        "organization": "organization_id",
        "team": "team_id",
        "user": "user_id",
        "role": "role",
    }
    search_fields = ["user__username", "user__email"]
    ordering_fields = ["created_at", "role"]

    def _check(self, *, organization_id: int, team_id: int | None, role: str) -> None:
        principal = self.principal
        if team_id is None:
            allowed = principal.is_org_admin(organization_id)
        else:
            allowed = principal.is_team_admin(team_id, organization_id)
        if not allowed:
            self.deny()
        if not principal_can_grant(principal=principal, organization_id=organization_id, role=role):
            # Team admins grant team roles only (org roles cannot be held on a team anyway).
            if team_id is None or role in (Role.ORG_OWNER, Role.ORG_ADMIN):
                self.deny("You cannot grant this role.")

    def check_create(self, data: dict[str, Any]) -> None:
        team = data.get("team")
        self._check(
            organization_id=data["organization"].pk,
            team_id=team.pk if team else None,
            role=data["role"],
        )

    def check_change(self, instance: Membership) -> None:
        self._check(
            organization_id=instance.organization_id,
            team_id=instance.team_id,
            role=instance.role,
        )

    def perform_service_create(self, data: dict[str, Any]) -> Membership:
        return membership_create(**data)

    def perform_service_update(self, instance: Membership, data: dict[str, Any]) -> Membership:
        self._check(
            organization_id=instance.organization_id, team_id=instance.team_id, role=data["role"]
        )
        return membership_update(membership=instance, role=data["role"])

    def perform_service_destroy(self, instance: Membership) -> None:
        membership_delete(membership=instance)
