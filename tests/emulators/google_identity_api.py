"""A local emulator of Google's other token sources, on one real socket: the Compute Engine
metadata server (GKE, Cloud Run) and the Security Token Service of workload identity federation.

Metadata server, like Google's: every request without `Metadata-Flavor: Google` is 403; `GET /`
(google-auth's ping of `GCE_METADATA_IP`) answers with the `Metadata-Flavor: Google` header;
`/computeMetadata/v1/instance/service-accounts/default/` (`?recursive=true`) describes the
instance's account, `.../default/token` issues its token, `/computeMetadata/v1/project/project-id`
names the project.

STS: `POST /v1/token` takes RFC 8693's token exchange (`grant_type` token-exchange, the pool's
`audience`, `subject_token_type`, the `subject_token` the workload holds, `scope`) and answers
400 `invalid_grant` for a subject token it did not expect.

Tokens come from `issue`, the resource emulator's (Vertex AI's, Secret Manager's), so the token a
credential source yields is one that resource accepts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs

import pytest

from tests.emulators.vault_api import JsonEmulator, Reply, Seen

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
POOL_AUDIENCE = (
    "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ogem/providers/ci"
)
METADATA_ACCOUNT = "default-compute@ogem-test-project.iam.gserviceaccount.com"
_FLAVOR = {"Metadata-Flavor": "Google"}
_ACCOUNT_PATH = "/computeMetadata/v1/instance/service-accounts/default/"


class GoogleIdentityEmulator(JsonEmulator):
    def __init__(self, *, issue: Callable[[], tuple[str, int]], project: str) -> None:
        super().__init__()
        self.issue = issue
        self.project = project
        self.subject_token = "workload-oidc-token-1"  # what the workload's token file holds

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def external_account(self, token_file: str) -> dict[str, object]:
        """A workload identity federation configuration, as `gcloud iam workload-identity-pools
        create-cred-config` writes it, reading its subject token from a file."""
        return {
            "type": "external_account",
            "audience": POOL_AUDIENCE,
            "subject_token_type": JWT_TOKEN_TYPE,
            "token_url": f"{self.url}/v1/token",
            "credential_source": {"file": token_file},
        }

    def handle(self, request: Seen) -> Reply:
        if request.path == "/v1/token" and request.method == "POST":
            return self._exchange(request)
        if request.headers.get("Metadata-Flavor") != "Google":
            return 403, {"error": "Missing Metadata-Flavor:Google header."}, {}
        if request.path == "/":
            return 200, {}, _FLAVOR
        if request.path == _ACCOUNT_PATH:
            account = {"aliases": ["default"], "email": METADATA_ACCOUNT, "scopes": ["cloud"]}
            return 200, account, _FLAVOR
        if request.path == f"{_ACCOUNT_PATH}token":
            token, lifetime = self.issue()
            return (
                200,
                {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"},
                _FLAVOR,
            )
        if request.path == "/computeMetadata/v1/project/project-id":
            return 200, self.project, _FLAVOR
        return 404, {"error": "not found"}, _FLAVOR

    def _exchange(self, request: Seen) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        expected = {
            "grant_type": TOKEN_EXCHANGE,
            "audience": POOL_AUDIENCE,
            "subject_token_type": JWT_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
        }
        if any(form.get(name) != value for name, value in expected.items()):
            return 400, {"error": "invalid_request", "error_description": "Bad exchange."}, {}
        if form.get("subject_token") != self.subject_token:
            return 400, {"error": "invalid_grant", "error_description": "Unknown subject."}, {}
        if "https://www.googleapis.com/auth/cloud-platform" not in form.get("scope", "").split():
            return 400, {"error": "invalid_scope", "error_description": "Scope required."}, {}
        token, lifetime = self.issue()
        answer = {
            "access_token": token,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": lifetime,
        }
        return 200, answer, {}


@contextmanager
def metadata_server_at(emulator: GoogleIdentityEmulator) -> Iterator[None]:
    """Point google-auth's metadata server variables at the emulator. google-auth reads
    GCE_METADATA_HOST (and the suite's NO_GCE_CHECK) when its module is imported, so the module
    is loaded again with them, and once more after."""
    from google.auth.compute_engine import _metadata

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GCE_METADATA_HOST", emulator.host)
        patch.setenv("GCE_METADATA_IP", emulator.host)
        patch.delenv("NO_GCE_CHECK", raising=False)
        importlib.reload(_metadata)
        try:
            yield
        finally:
            patch.undo()
            importlib.reload(_metadata)
