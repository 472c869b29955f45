"""What the HTTP routes call: the engine's application layer and the face's own helpers, built by the
composition root (``gateway.daemon``) and handed to ``gateway.http.app.build_app``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from engine.model import Limits
from engine.services.admin import AdminService
from engine.services.flows import FlowsService
from engine.services.watch import WatchService
from gateway.http.auth import HttpAuth


@dataclass
class HttpServices:
    flows: FlowsService
    watch: WatchService
    admin: AdminService
    auth: HttpAuth
    limits: Limits
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # set at shutdown: live feeds end
    extra: dict[str, Any] = field(default_factory=dict)  # a face's own collaborators (portal, webhooks)
