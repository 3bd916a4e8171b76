from tests.api.conftest import *  # noqa: F403 (the two-tenant world with a caller per role)
