"""The callers of the permission matrix (DESIGN §6), the same over gRPC and HTTP
(``tests/integration/test_grpc_permissions.py``, ``tests/http/test_api_permissions.py``).

The supplier's technical user (deposited the flow), a primary manager holding flow follow-up, a plain user
holding it, a user of the structure without it (the demo viewer), a user of another structure, an invoicing
provider's technical user, a wrong token and no token.
"""

from __future__ import annotations

from engine.directory import Role, User
from engine.secrets import hash_secret, secret_lookup_id
from engine.store.port import Store
from tests.grpc_support import MANAGER, OTHER_SUPPLIER, SUPPLIER, TECH, VIEWER

FOLLOWER = "follower-token"
OTHER = "other-structure-token"
PROVIDER_TECH = "provider-technical-token"
CALLERS = {
    "technical": TECH,
    "manager": MANAGER,
    "user_with_profile": FOLLOWER,
    "user_without_profile": VIEWER,
    "other_structure_user": OTHER,
    "provider_technical": PROVIDER_TECH,
    "wrong_token": "not-a-token",
    "no_token": None,
}
SEES = {"technical", "manager", "user_with_profile"}  # the callers who see the supplier's flow
UNAUTHENTICATED = {"wrong_token", "no_token"}


async def add_callers(store: Store) -> None:
    """The callers the demo directory lacks: the follower, the other structure's user, the provider's
    technical user, each with its token."""
    for login, siret, token in (("follower", SUPPLIER, FOLLOWER), ("other", OTHER_SUPPLIER, OTHER)):
        await store.upsert_user(User(login=login, name=login))
        await store.set_membership(login, siret, Role.USER)
        await store.grant_profile(login, siret, "SUIVI_FLUX")
        await store.set_token("user", login, hash_secret(token), secret_lookup_id(token))
    await store.upsert_technical_user("TECH_provider", "55210055400013", ruleset=None)
    await store.set_token("technical", "TECH_provider", hash_secret(PROVIDER_TECH), secret_lookup_id(PROVIDER_TECH))
