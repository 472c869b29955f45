"""Why the daemon could not start: one line for the operator and an exit code for systemd.

Exit codes (sysexits.h), which the systemd unit acts on:

* 65 ``EX_DATAERR`` — the store is damaged or missing beside existing data: restarting would not help.
* 69 ``EX_UNAVAILABLE`` — a listener cannot bind its address (in use, not permitted): restarted, since
  the port may be freed.
* 75 ``EX_TEMPFAIL`` — the data folder is held by another daemon: restarted, since the other may be
  stopping.
* 78 ``EX_CONFIG`` — the configuration is invalid (``gateway.settings``): not restarted.
"""

from __future__ import annotations

import errno
import os
import socket

from gateway.settings import ENV_PREFIX

EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
BIND_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})  # a bind's own failures


class StartupError(Exception):
    """The daemon cannot start; ``str()`` is the one line to print, ``exit_code`` the process status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def cannot_listen(section: str, address: str, exc: OSError | None) -> StartupError:
    """A listener's bind failed: name the address and every way to change it (file key, variable, flag)."""
    reason = os.strerror(exc.errno).lower() if exc is not None and exc.errno else "cannot bind"
    where = f"[{section}] listen, {ENV_PREFIX}{section.upper()}__LISTEN, --{section}-listen"
    return StartupError(f"cannot listen on {address} ({where}): {reason}", EX_UNAVAILABLE)


def bind_error(address: str) -> OSError | None:
    """Why ``address`` cannot be bound, for servers that do not say (grpc only answers "failed to bind").

    Binds a throwaway socket the way those servers do (``SO_REUSEADDR``, no port sharing) and returns the
    error, or None when the address is free now.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, ValueError) as exc:
        return exc if isinstance(exc, OSError) else OSError(errno.EINVAL, str(exc))
    for family, kind, proto, _name, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                return exc
    return None
