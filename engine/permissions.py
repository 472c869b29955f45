"""Who may see and do what (DESIGN §6), as pure functions of a ``Principal``.

* A user sees the flows of the structures on which they hold the flow follow-up profile (SUIVI_FLUX);
  a technical user or EDI partner sees the flows it deposited. Nobody else sees a flow, and a search
  never reveals that a hidden flow exists (the store applies ``Visibility`` inside its queries).
* A technical user deposits for its own structure and, when that structure is an invoicing provider,
  for any issuing structure; a portal user deposits for a structure they belong to; an EDI partner for
  its own structure (a provider's partner for any structure).
* Only a primary manager of a structure grants or revokes profiles on it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from engine.errors import PermissionDenied


class PrincipalKind(enum.Enum):
    TECHNICAL = "technical"
    USER = "user"
    PARTNER = "partner"
    OPERATOR = "operator"  # the platform's own administrators (offline `fluxdepot admin`, AdminService)


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    login: str  # technical login, user login or partner code
    siret: str | None = None  # the structure of a technical user or partner
    provider: bool = False  # that structure is an invoicing provider
    member_of: frozenset[str] = frozenset()  # a user's structures
    manages: frozenset[str] = frozenset()  # structures where the user is primary manager
    follows: frozenset[str] = frozenset()  # structures where the user holds SUIVI_FLUX

    @property
    def depositor(self) -> str:
        """How flows deposited by this principal record their depositor."""
        prefix = {
            PrincipalKind.TECHNICAL: "tech",
            PrincipalKind.USER: "user",
            PrincipalKind.PARTNER: "partner",
            PrincipalKind.OPERATOR: "operator",
        }[self.kind]
        return f"{prefix}:{self.login}"


@dataclass(frozen=True)
class Visibility:
    """The flows a principal may see: all flows of ``sirets``, plus those ``depositor`` deposited."""

    sirets: frozenset[str] = field(default_factory=frozenset)
    depositor: str | None = None
    everything: bool = False

    def allows(self, issuer_siret: str, depositor: str) -> bool:
        return self.everything or issuer_siret in self.sirets or depositor == self.depositor


def visibility_of(principal: Principal) -> Visibility:
    if principal.kind is PrincipalKind.OPERATOR:
        return Visibility(everything=True)
    if principal.kind is PrincipalKind.USER:
        return Visibility(sirets=principal.follows)
    return Visibility(depositor=principal.depositor)


def check_can_deposit_for(principal: Principal, issuer_siret: str) -> None:
    """Raise ``PermissionDenied`` unless ``principal`` may deposit a flow for ``issuer_siret``."""
    if principal.kind is PrincipalKind.OPERATOR:
        return
    if principal.kind is PrincipalKind.USER:
        if issuer_siret in principal.member_of:
            return
    elif principal.siret == issuer_siret or principal.provider:
        return
    raise PermissionDenied(f"{principal.depositor} may not deposit flows for structure {issuer_siret}")


def check_can_manage(principal: Principal, siret: str) -> None:
    """Raise ``PermissionDenied`` unless ``principal`` is a primary manager of ``siret`` (or an operator)."""
    if principal.kind is PrincipalKind.OPERATOR or siret in principal.manages:
        return
    raise PermissionDenied(f"only a primary manager of structure {siret} may do this")
