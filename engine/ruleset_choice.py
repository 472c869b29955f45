"""Which ruleset judges a depositor's flows: its own (the directory's ``ruleset`` of a technical user or an EDI
partner), else the config's default ([rules] ruleset).

The choices are read from the store as one small map (only the depositors that have a ruleset of their
own) and kept ``ttl_s`` seconds, so judging a flow costs no query: a directory change reaches the workers
within ``ttl_s`` (at once in this process after ``invalidate``). One read at a time refreshes the map;
a failed read keeps the last map it had (or raises when it has none: the flow is handed back and retried).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from engine.errors import StoreError
from engine.model import Rules, Ruleset

DEFAULT_TTL_S = 5.0
ReadChoices = Callable[[], Awaitable[Mapping[str, Ruleset]]]


class DepositorRulesets:
    """The rules of each depositor's flows (see the module docstring)."""

    def __init__(
        self,
        read: ReadChoices,
        default: Rules,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.default = default
        self._ttl_s = ttl_s
        self._clock = clock
        self._choices: Mapping[str, Ruleset] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()
        self.reads = 0  # how many times the store was asked (tests, benchmarks)

    async def rules_for(self, depositor: str) -> Rules:
        """The rules ``depositor``'s flows are judged by (``depositor`` as a flow records it)."""
        return self.among(await self.current(), depositor)

    def among(self, choices: Mapping[str, Ruleset], depositor: str) -> Rules:
        """The rules of ``depositor``'s flows under ``choices`` (as ``fresh`` or ``current`` gave them)."""
        chosen = choices.get(depositor)
        if chosen is None or chosen is self.default.ruleset:
            return self.default
        return replace(self.default, ruleset=chosen)

    def fresh(self) -> Mapping[str, Ruleset] | None:
        """The choices if read less than ``ttl_s`` ago, else None (then ``current``): for a thread that
        cannot await, which asks the event loop for ``current`` only when this is None."""
        choices = self._choices
        return choices if choices is not None and self._clock() - self._read_at < self._ttl_s else None

    def invalidate(self) -> None:
        """Read the choices again at the next flow (the directory changed in this process)."""
        self._choices = None

    async def current(self) -> Mapping[str, Ruleset]:
        """The choices, read again when older than ``ttl_s``."""
        choices = self._choices
        if choices is not None and self._clock() - self._read_at < self._ttl_s:
            return choices
        async with self._lock:
            if self._choices is not None and self._clock() - self._read_at < self._ttl_s:
                return self._choices  # another flow refreshed it meanwhile
            try:
                fresh = await self._read()
            except StoreError:
                if self._choices is None:
                    raise
                return self._choices  # the store is away: the last choices still hold
            self.reads += 1
            self._choices, self._read_at = dict(fresh), self._clock()
            return self._choices
