"""The web portal's directory reads: who belongs to a structure and which profiles they hold there
(Organisation → Users → Manage user permissions), for a primary manager of that structure only. Granting
and revoking go through ``engine.services.admin.AdminService`` like every other face."""

from __future__ import annotations

from engine.permissions import Principal, check_can_manage
from engine.store.port import MemberRecord, Store


class PortalUsers:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def members(self, principal: Principal, siret: str) -> list[MemberRecord]:
        """The users of ``siret`` and their profiles there; ``PermissionDenied`` unless the caller manages it."""
        check_can_manage(principal, siret)
        return await self._store.structure_members(siret)
