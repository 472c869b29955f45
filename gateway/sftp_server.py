"""The SFTP server for EDI partners (DESIGN §8): asyncssh, over the collaborators the daemon builds.

``start_sftp_server`` loads (or creates) the host keys, then listens with SFTP as the only service: no
shell, exec, scp, port, X11 or agent forwarding, SFTP version 3. Authentication is its ``sftp_auth``
``Credentials``; each session is a ``sftp_fs.PartnerSftpServer`` over the partner's virtual root; uploads
go through its ``sftp_intake.Intake`` to the engine's deposit service. ``auth_settings`` and
``intake_settings`` split the face's ``SftpSettings`` for them. Stop it with ``server.close(); await
server.wait_closed()`` (STYLE rule 14).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncssh
import structlog

from engine.model import Limits
from gateway.sftp_auth import AuthSettings, Credentials, PartnerSshServer
from gateway.sftp_fs import sftp_factory
from gateway.sftp_host_keys import load_or_create_host_keys
from gateway.sftp_intake import Intake, IntakeSettings

log = structlog.get_logger("fluxdepot.sftp")


@dataclass(frozen=True)
class SftpSettings:
    """What the SFTP server needs from the config (``[sftp]`` and ``[limits]``)."""

    max_flow_bytes: int = Limits.max_flow_bytes
    password_auth: bool = False
    max_auth_failures: int = 5  # per (partner, source address) within lockout_s; then that pair is locked
    max_address_failures: int = 20  # per source address, whatever the user name
    max_partner_failures: int = 50  # per partner from every address; then it is locked everywhere
    first_lockout_s: float = 60.0  # a first lock; each further one twice as long, up to lockout_s
    lockout_s: float = 3600.0
    auth_delay_s: float = 0.5  # every rejected attempt is answered after this delay
    quota_bytes: int = 1024**3  # pending bytes in a partner's in/
    quota_files: int = 1000  # pending files in a partner's in/
    max_upload_holes: int = 1024  # unwritten gaps in one upload; past it the write fails, the upload is dropped
    login_timeout_s: float = 30.0
    host_keys_dir: Path | None = None  # default: <data dir>/sftp/host_keys
    rsa_host_key: bool = True
    encryption_algs: tuple[str, ...] = ()  # empty: asyncssh's defaults


class SftpServer:
    """The listening server: ``close()`` stops accepting and closes every open connection (an upload in
    progress is discarded, never deposited); ``wait_closed()`` waits for both."""

    def __init__(self, acceptor: asyncssh.SSHAcceptor, credentials: Credentials, port: int) -> None:
        self._acceptor = acceptor
        self._credentials = credentials
        self.port = port

    @property
    def session_count(self) -> int:
        return len(self._credentials.connections)

    def close(self) -> None:
        self._acceptor.close()
        for conn in list(self._credentials.connections):
            conn.close()

    async def wait_closed(self) -> None:
        await self._acceptor.wait_closed()
        for conn in list(self._credentials.connections):
            await conn.wait_closed()
        await self._credentials.guard.drain()  # failures of the last connections reach the store
        log.info("sftp_stopped", port=self.port)


def parse_listen(listen: str | tuple[str, int]) -> tuple[str, int]:
    """``"127.0.0.1:2222"``, ``"[::1]:2222"`` or ``(host, port)``."""
    if isinstance(listen, tuple):
        return listen
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an explicit ":port" means every address


def auth_settings(settings: SftpSettings) -> AuthSettings:
    """What ``sftp_auth`` needs of the face's settings."""
    return AuthSettings(
        password_auth=settings.password_auth,
        max_auth_failures=settings.max_auth_failures,
        max_address_failures=settings.max_address_failures,
        max_partner_failures=settings.max_partner_failures,
        first_lockout_s=min(settings.first_lockout_s, settings.lockout_s),
        lockout_s=settings.lockout_s,
        auth_delay_s=settings.auth_delay_s,
    )


def intake_settings(settings: SftpSettings) -> IntakeSettings:
    """What ``sftp_intake`` needs of the face's settings."""
    return IntakeSettings(
        max_flow_bytes=settings.max_flow_bytes,
        quota_bytes=settings.quota_bytes,
        quota_files=settings.quota_files,
        max_upload_holes=settings.max_upload_holes,
    )


async def start_sftp_server(
    credentials: Credentials,
    intake: Intake,
    settings: SftpSettings,
    listen: str | tuple[str, int],
) -> tuple[SftpServer, int]:
    """Listen for partners on ``listen`` (port 0: any free port); returns the server and its port."""
    folders = intake.folders
    folders.create()
    host_keys = load_or_create_host_keys(settings.host_keys_dir or folders.host_keys, rsa=settings.rsa_host_key)
    host, port = parse_listen(listen)
    options: dict[str, object] = {}
    if settings.encryption_algs:
        options["encryption_algs"] = list(settings.encryption_algs)
    acceptor = await asyncssh.create_server(
        lambda: PartnerSshServer(credentials),
        host,
        port,
        server_host_keys=host_keys,
        sftp_factory=sftp_factory(intake),
        sftp_version=3,
        allow_scp=False,
        allow_pty=False,
        line_editor=False,  # SFTP only, no shell: asyncssh's line editor would only wrap every channel write
        agent_forwarding=False,
        x11_forwarding=False,
        kbdint_auth=False,
        gss_host=None,
        login_timeout=settings.login_timeout_s,
        **options,
    )
    bound = int(acceptor.sockets[0].getsockname()[1])
    log.info("sftp_listening", host=host, port=bound, password_auth=settings.password_auth)
    return SftpServer(acceptor, credentials, bound), bound
