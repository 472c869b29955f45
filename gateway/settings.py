"""The daemon's settings: one TOML file, ``FLUXDEPOT_<SECTION>__<KEY>`` environment overrides, validated once.

Every problem is collected and reported together, each naming its key and its source (the file, or the
environment variable that set it), so an admin fixes a config in one go (STYLE rule 13). The daemon
exits 78 (EX_CONFIG) on a ``SettingsError``, which the systemd unit does not restart.

Relative paths in the file are relative to the file; relative paths from the environment or the
command line are relative to the working directory. ``config/fluxdepot.example.toml`` documents every
key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from engine.cpu_pool import MIN_MEMORY_LIMIT_BYTES, ProcessLimits
from engine.flownumber import PARTNER_CODE
from engine.model import Limits, Rules, Ruleset
from engine.status import FINAL_STATUSES, FlowStatus

ENV_PREFIX = "FLUXDEPOT_"
EX_CONFIG = 78
# FLUXDEPOT_ variables that are not daemon settings: the client's, and those of the tests, benchmarks and CI.
OTHER_VARIABLES = ("TOKEN", "TARGET", "TEST_", "BENCH_", "PG_", "CORPUS")


class SettingsError(ValueError):
    """The configuration is invalid; ``problems`` lists every problem found, with its source."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _listen(value: str | None) -> str | None:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``); empty or None disables the listener."""
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT (e.g. 127.0.0.1:50051), not {value!r}")
    return value


Listen = Annotated[str | None, AfterValidator(_listen)]


class GatewaySection(_Section):
    code: str = "CPP001"  # partner code numbering API and portal deposits

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not PARTNER_CODE.match(v):
            raise ValueError(f"must match {PARTNER_CODE.pattern}")
        return v


class DirectorySection(_Section):
    file: Path | None = None  # imported at start and on SIGHUP


class StoreSection(_Section):
    url: str | None = None  # default: sqlite:///<data dir>/fluxdepot.db
    pool_min: int = Field(2, ge=1)
    pool_max: int = Field(10, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("sqlite:", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return v


class DataSection(_Section):
    dir: Path = Path("var")  # blobs, SQLite file, SFTP host keys, partner folders


class GrpcSection(_Section):
    listen: Listen = "127.0.0.1:50051"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: clients must present a certificate signed by it (mutual TLS)
    token_cache_s: float = Field(60.0, ge=0)
    # A unary Deposit's largest content: grpc holds each message whole before any check, so bigger files
    # come by DepositStream (the client streams anything past 1 MiB), spooled to disk as they arrive.
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)


class SftpSection(_Section):
    listen: Listen = "127.0.0.1:2222"
    password_auth: bool = False
    max_auth_failures: int = Field(5, ge=1)  # per (partner, source address): then that pair is locked
    max_address_failures: int = Field(20, ge=1)  # per source address, whatever the user name
    max_partner_failures: int = Field(50, ge=1)  # per partner from every address: then locked everywhere
    lockout_s: float = Field(3600, ge=0)  # the longest lock, and the window failures are counted in
    first_lockout_s: float = Field(60, gt=0)  # a key's first lock; each further one twice as long
    quota_bytes: int = Field(1024**3, ge=1)  # pending bytes in a partner's in/
    quota_files: int = Field(1000, ge=1)
    max_upload_holes: int = Field(1024, ge=0)  # unwritten gaps in one upload; past it the upload is dropped

    @field_validator("first_lockout_s")
    @classmethod
    def _first_lockout(cls, v: float, info: Any) -> float:
        longest = info.data.get("lockout_s")
        if longest is not None and v > longest:
            raise ValueError(f"must not exceed lockout_s ({longest:g}): locks grow from it up to lockout_s")
        return v


class HttpSection(_Section):
    """The HTTP listener: the AFNOR Flow Service (/v1), the JSON API (/api/v1), OAuth2 and the portal (/)."""

    listen: Listen = "127.0.0.1:8080"
    tls_cert: Path | None = None  # both set: HTTPS
    tls_key: Path | None = None
    requests_per_s: float = Field(50.0, gt=0)  # per caller (token, else source address); past it 429
    burst: int = Field(100, ge=1)  # requests a caller may make at once before the rate applies
    access_token_ttl_s: int = Field(900, ge=60, le=86400)  # OAuth2 client-credentials access tokens


class PortalSection(_Section):
    """The web portal's sessions, log-in lockouts and time zone."""

    time_zone: str = "Europe/Paris"  # dates are shown in it, in the user's language
    session_idle_s: float = Field(1800, gt=0)  # a session unused this long ends
    session_absolute_s: float = Field(43200, gt=0)  # and every session ends this long after the log-in
    max_login_failures: int = Field(5, ge=1)  # per (login, source address): then that pair is locked
    max_address_failures: int = Field(20, ge=1)  # per source address, whatever the login
    max_user_failures: int = Field(50, ge=1)  # per login from every address: then locked everywhere
    first_lockout_s: float = Field(60, gt=0)
    lockout_s: float = Field(900, gt=0)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as Europe/Paris)") from None
        return v


class WebhooksSection(_Section):
    """Deliveries of status changes to subscribers' URLs."""

    timeout_s: float = Field(10, gt=0)  # one POST, connection included
    retry_for_s: float = Field(86400, gt=0)  # then the delivery is dead-lettered (redeliverable)
    first_retry_s: float = Field(5, gt=0)  # backoff doubles from it, with jitter ...
    max_retry_s: float = Field(3600, gt=0)  # ... up to this between two attempts
    concurrency: int = Field(8, ge=1)  # POSTs in flight per daemon


class LimitsSection(_Section):
    max_flow_bytes: int = Field(Limits.max_flow_bytes, ge=1)
    max_documents: int = Field(Limits.max_documents, ge=1)
    max_member_bytes: int = Field(Limits.max_member_bytes, ge=1)
    max_unpacked_bytes: int = Field(Limits.max_unpacked_bytes, ge=1)
    max_compression_ratio: int = Field(Limits.max_compression_ratio, ge=1)
    max_archive_members: int = Field(Limits.max_archive_members, ge=1)
    max_archive_header_bytes: int = Field(Limits.max_archive_header_bytes, ge=512)
    max_pdf_objects: int = Field(Limits.max_pdf_objects, ge=1)
    max_pdf_stream_bytes: int = Field(Limits.max_pdf_stream_bytes, ge=1)
    max_pdf_attachments: int = Field(Limits.max_pdf_attachments, ge=1)
    max_pdf_attachment_bytes: int = Field(Limits.max_pdf_attachment_bytes, ge=1)
    max_pdf_attachments_total_bytes: int = Field(Limits.max_pdf_attachments_total_bytes, ge=1)
    max_xml_bytes: int = Field(Limits.max_xml_bytes, ge=1)
    max_xml_depth: int = Field(Limits.max_xml_depth, ge=1, le=256)  # libxml2 stops at 256 anyway
    max_xml_elements: int = Field(Limits.max_xml_elements, ge=1)
    validation_timeout_s: float = Field(Limits.validation_timeout_s, gt=0)

    def to_limits(self) -> Limits:
        return Limits(**{f.name: getattr(self, f.name) for f in fields(Limits)})


class RulesSection(_Section):
    ruleset: Ruleset = Ruleset.EN16931  # en16931 | en16931+fr-flux2, for every flow
    artefacts_dir: Path | None = None  # downloaded artefacts; default <venv>/share/fluxdepot/artefacts

    def to_rules(self) -> Rules:
        return Rules(self.ruleset, str(self.artefacts_dir) if self.artefacts_dir is not None else None)


class WorkersSection(_Section):
    # Workers wait on the store between validations: twice the validation processes keeps those busy.
    count: int = Field(default_factory=lambda: 2 * (os.cpu_count() or 1), ge=0)
    processes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)  # validation processes
    pump: bool = True  # on SQLite, new flows go to their verdict through one thread (engine.pump), not `count` tasks
    lease_s: float = Field(30, gt=0)
    poll_s: float = Field(1.0, gt=0)
    recover_every_s: float = Field(10, gt=0)
    # Each validation process (0 turns a bound off): its private memory, and when it is replaced.
    memory_limit_bytes: int = Field(ProcessLimits.memory_limit_bytes, ge=0)
    recycle_after_checks: int = Field(ProcessLimits.recycle_after_checks, ge=0)
    recycle_rss_bytes: int = Field(ProcessLimits.recycle_rss_bytes, ge=0)

    @field_validator("memory_limit_bytes")
    @classmethod
    def _memory_limit(cls, v: int) -> int:
        if 0 < v < MIN_MEMORY_LIMIT_BYTES:  # e.g. 2048 meant as MiB: no process could even start
            raise ValueError(f"must be 0 (no limit) or at least {MIN_MEMORY_LIMIT_BYTES} bytes (512 MiB)")
        return v

    def process_limits(self) -> ProcessLimits:
        return ProcessLimits(self.memory_limit_bytes, self.recycle_after_checks, self.recycle_rss_bytes)


class ShutdownSection(_Section):
    grace_s: float = Field(20, ge=0)  # systemd's TimeoutStopSec must exceed it


class RetentionSection(_Section):
    flows_days: int = Field(3650, ge=1)  # `fluxdepot admin purge` deletes older final flows
    outbox_days: int = Field(30, ge=1)  # return flows left uncollected in out/
    webhooks_days: int = Field(30, ge=1)  # delivered and dead webhook deliveries, after their last attempt


class MetricsSection(_Section):
    listen: Listen = "127.0.0.1:9464"  # Prometheus /metrics; empty disables


class LoggingSection(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"  # auto: console on a terminal, JSON otherwise


_DEFAULT_STUCK_S = {
    "RECEIVED": 300.0,
    "PROCESSED_SE_CPP": 300.0,
    "WAITING_FOR_PROCESSING": 900.0,
    "IN_PROGRESS": 900.0,
    "WAITING_FOR_REPROCESSING": 86400.0,
}


class WatchdogSection(_Section):
    interval_s: float = Field(30, gt=0)
    stuck_after_s: dict[str, float] = Field(default_factory=lambda: dict(_DEFAULT_STUCK_S))

    @field_validator("stuck_after_s")
    @classmethod
    def _statuses(cls, v: dict[str, float]) -> dict[str, float]:
        v = {name.upper(): age for name, age in v.items()}  # environment keys arrive in lower case
        for name, age in v.items():
            if name not in FlowStatus.__members__ or FlowStatus[name] in FINAL_STATUSES:
                raise ValueError(f"{name!r} is not a non-final status")
            if age <= 0:
                raise ValueError(f"{name}: must be a positive number of seconds")
        return v


class Settings(BaseSettings):
    """Everything the daemon reads from its config file and environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True, case_sensitive=False
    )

    environment: Literal["demo", "production"] = "production"
    gateway: GatewaySection = GatewaySection()
    directory: DirectorySection = DirectorySection()
    store: StoreSection = StoreSection()
    data: DataSection = DataSection()
    grpc: GrpcSection = GrpcSection()
    sftp: SftpSection = SftpSection()
    http: HttpSection = HttpSection()
    portal: PortalSection = PortalSection()
    webhooks: WebhooksSection = WebhooksSection()
    limits: LimitsSection = LimitsSection()
    rules: RulesSection = RulesSection()
    workers: WorkersSection = WorkersSection()
    shutdown: ShutdownSection = ShutdownSection()
    retention: RetentionSection = RetentionSection()
    metrics: MetricsSection = MetricsSection()
    logging: LoggingSection = LoggingSection()
    watchdog: WatchdogSection = WatchdogSection()
    source: Path = Path()  # the config file (set by load_settings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)  # the environment overrides the file

    # Convenience views used across the gateway.
    @property
    def data_dir(self) -> Path:
        return self.data.dir

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.data.dir / 'fluxdepot.db'}"

    @property
    def directory_file(self) -> Path | None:
        return self.directory.file

    @property
    def gateway_code(self) -> str:
        return self.gateway.code

    @property
    def engine_limits(self) -> Limits:
        return self.limits.to_limits()

    @property
    def engine_rules(self) -> Rules:
        return self.rules.to_rules()

    def stuck_after(self) -> dict[FlowStatus, float]:
        return {FlowStatus[k]: v for k, v in self.watchdog.stuck_after_s.items()}


_FILE_PATHS = (
    ("directory", "file"),
    ("data", "dir"),
    ("grpc", "tls_cert"),
    ("grpc", "tls_key"),
    ("grpc", "tls_client_ca"),
    ("http", "tls_cert"),
    ("http", "tls_key"),
    ("rules", "artefacts_dir"),
)


def load_settings(path: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Settings:
    """Read ``path``, apply the environment then ``overrides`` (command-line flags), validate everything.

    Raises ``SettingsError`` listing every problem with its source.
    """
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError([f"{path}: cannot read the config file: {exc.strerror or exc}"]) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError([f"{path}: not valid TOML: {exc}"]) from None
    base = path.resolve().parent
    for section, key in _FILE_PATHS:  # the file's relative paths are relative to the file
        table = raw.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str) and _env_name(section, key) not in os.environ:
            table[key] = str((base / table[key]).resolve())
    raw["source"] = str(path)
    unknown = unknown_variables(os.environ)
    try:
        settings = Settings(**raw)
    except ValidationError as exc:
        described = [_describe(error, path) for error in exc.errors()]
        # A misspelled key from the environment is already in ``unknown``, in its own words.
        described = [d for d in described if not (unknown and d.startswith(ENV_PREFIX) and "Extra inputs" in d)]
        raise SettingsError(unknown + described) from None
    if unknown:
        raise SettingsError(unknown)
    for section, values in (overrides or {}).items():
        current = getattr(settings, section)
        try:
            updated = current.model_validate({**current.model_dump(), **values})
        except ValidationError as exc:
            raise SettingsError(
                [f"command line: --{section}-{e['loc'][-1]}: {e['msg']}" for e in exc.errors()]
            ) from None
        settings = settings.model_copy(update={section: updated})
    return settings


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A ``FLUXDEPOT_`` variable that names no setting is a typo, reported like a misspelled file key
    (pydantic-settings would silently ignore it)."""
    problems = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if "__" not in rest and rest.upper().startswith(OTHER_VARIABLES):
            continue
        if not _names_setting(rest.split("__")):
            problems.append(f"{name}: no such setting (variables are {ENV_PREFIX}<SECTION>__<KEY>)")
    return problems


def _names_setting(parts: list[str]) -> bool:
    field = Settings.model_fields.get(parts[0])
    if field is None or parts[0] == "source":
        return False
    if len(parts) == 1:
        return not _is_section(field.annotation)
    section = field.annotation
    if not _is_section(section):
        return False
    key = section.model_fields.get(parts[1])  # type: ignore[union-attr]
    if key is None:
        return False
    return len(parts) == 2 or getattr(key.annotation, "__origin__", None) is dict  # e.g. a status in a table


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, _Section)


def _env_name(*loc: str) -> str:
    return ENV_PREFIX + "__".join(part.upper() for part in loc)


def _describe(error: Any, path: Path) -> str:
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc)
    source = next(
        (name for n in range(len(loc), 0, -1) if (name := _env_name(*loc[:n])) in os.environ),
        str(path),
    )
    return f"{source}: {key}: {error['msg']}"
