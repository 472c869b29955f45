import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from fluxdepot.v1 import flows_pb2 as _flows_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_PRIMARY_MANAGER: _ClassVar[Role]
    ROLE_USER: _ClassVar[Role]

class ReprocessAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPROCESS_ACTION_UNSPECIFIED: _ClassVar[ReprocessAction]
    REPROCESS_ACTION_RELEASE: _ClassVar[ReprocessAction]
    REPROCESS_ACTION_CLOSE: _ClassVar[ReprocessAction]
    REPROCESS_ACTION_REPROCESS: _ClassVar[ReprocessAction]
ROLE_UNSPECIFIED: Role
ROLE_PRIMARY_MANAGER: Role
ROLE_USER: Role
REPROCESS_ACTION_UNSPECIFIED: ReprocessAction
REPROCESS_ACTION_RELEASE: ReprocessAction
REPROCESS_ACTION_CLOSE: ReprocessAction
REPROCESS_ACTION_REPROCESS: ReprocessAction

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Service(_message.Message):
    __slots__ = ("code", "label", "active")
    CODE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    code: str
    label: str
    active: bool
    def __init__(self, code: _Optional[str] = ..., label: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class Structure(_message.Message):
    __slots__ = ("siret", "name", "active", "is_public", "is_provider", "service_code_required", "engagement_required", "service_or_engagement_required", "services")
    SIRET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    IS_PUBLIC_FIELD_NUMBER: _ClassVar[int]
    IS_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CODE_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    ENGAGEMENT_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    SERVICE_OR_ENGAGEMENT_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    siret: str
    name: str
    active: bool
    is_public: bool
    is_provider: bool
    service_code_required: bool
    engagement_required: bool
    service_or_engagement_required: bool
    services: _containers.RepeatedCompositeFieldContainer[Service]
    def __init__(self, siret: _Optional[str] = ..., name: _Optional[str] = ..., active: _Optional[bool] = ..., is_public: _Optional[bool] = ..., is_provider: _Optional[bool] = ..., service_code_required: _Optional[bool] = ..., engagement_required: _Optional[bool] = ..., service_or_engagement_required: _Optional[bool] = ..., services: _Optional[_Iterable[_Union[Service, _Mapping]]] = ...) -> None: ...

class ListStructuresRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStructuresResponse(_message.Message):
    __slots__ = ("structures",)
    STRUCTURES_FIELD_NUMBER: _ClassVar[int]
    structures: _containers.RepeatedCompositeFieldContainer[Structure]
    def __init__(self, structures: _Optional[_Iterable[_Union[Structure, _Mapping]]] = ...) -> None: ...

class UpsertUserRequest(_message.Message):
    __slots__ = ("login", "name", "siret", "role", "issue_token")
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIRET_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    login: str
    name: str
    siret: str
    role: Role
    issue_token: bool
    def __init__(self, login: _Optional[str] = ..., name: _Optional[str] = ..., siret: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., issue_token: _Optional[bool] = ...) -> None: ...

class UpsertUserResponse(_message.Message):
    __slots__ = ("login", "token")
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    login: str
    token: str
    def __init__(self, login: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class SetMembershipRequest(_message.Message):
    __slots__ = ("login", "siret", "role")
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    SIRET_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    login: str
    siret: str
    role: Role
    def __init__(self, login: _Optional[str] = ..., siret: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ...) -> None: ...

class CreateTechnicalUserRequest(_message.Message):
    __slots__ = ("login", "siret", "rotate", "ruleset")
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    SIRET_FIELD_NUMBER: _ClassVar[int]
    ROTATE_FIELD_NUMBER: _ClassVar[int]
    RULESET_FIELD_NUMBER: _ClassVar[int]
    login: str
    siret: str
    rotate: bool
    ruleset: str
    def __init__(self, login: _Optional[str] = ..., siret: _Optional[str] = ..., rotate: _Optional[bool] = ..., ruleset: _Optional[str] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("kind", "login")
    KIND_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    kind: str
    login: str
    def __init__(self, kind: _Optional[str] = ..., login: _Optional[str] = ...) -> None: ...

class TokenResponse(_message.Message):
    __slots__ = ("kind", "login", "token")
    KIND_FIELD_NUMBER: _ClassVar[int]
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    kind: str
    login: str
    token: str
    def __init__(self, kind: _Optional[str] = ..., login: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class Partner(_message.Message):
    __slots__ = ("code", "siret", "public_keys", "status_files", "ruleset")
    CODE_FIELD_NUMBER: _ClassVar[int]
    SIRET_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FILES_FIELD_NUMBER: _ClassVar[int]
    RULESET_FIELD_NUMBER: _ClassVar[int]
    code: str
    siret: str
    public_keys: _containers.RepeatedScalarFieldContainer[str]
    status_files: bool
    ruleset: str
    def __init__(self, code: _Optional[str] = ..., siret: _Optional[str] = ..., public_keys: _Optional[_Iterable[str]] = ..., status_files: _Optional[bool] = ..., ruleset: _Optional[str] = ...) -> None: ...

class SetRejectionRuleRequest(_message.Message):
    __slots__ = ("partner_code", "syntax", "rule")
    PARTNER_CODE_FIELD_NUMBER: _ClassVar[int]
    SYNTAX_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    partner_code: str
    syntax: str
    rule: str
    def __init__(self, partner_code: _Optional[str] = ..., syntax: _Optional[str] = ..., rule: _Optional[str] = ...) -> None: ...

class ProfileRequest(_message.Message):
    __slots__ = ("login", "siret", "profile")
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    SIRET_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    login: str
    siret: str
    profile: str
    def __init__(self, login: _Optional[str] = ..., siret: _Optional[str] = ..., profile: _Optional[str] = ...) -> None: ...

class ReprocessFlowRequest(_message.Message):
    __slots__ = ("flow_number", "action", "detail")
    FLOW_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    flow_number: str
    action: ReprocessAction
    detail: str
    def __init__(self, flow_number: _Optional[str] = ..., action: _Optional[_Union[ReprocessAction, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class ListRejectsRequest(_message.Message):
    __slots__ = ("issuer_sirets", "day_from", "day_to")
    ISSUER_SIRETS_FIELD_NUMBER: _ClassVar[int]
    DAY_FROM_FIELD_NUMBER: _ClassVar[int]
    DAY_TO_FIELD_NUMBER: _ClassVar[int]
    issuer_sirets: _containers.RepeatedScalarFieldContainer[str]
    day_from: _timestamp_pb2.Timestamp
    day_to: _timestamp_pb2.Timestamp
    def __init__(self, issuer_sirets: _Optional[_Iterable[str]] = ..., day_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., day_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Reject(_message.Message):
    __slots__ = ("flow_number", "issuer_siret", "deposited_at", "invoice_number", "document", "reason")
    FLOW_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ISSUER_SIRET_FIELD_NUMBER: _ClassVar[int]
    DEPOSITED_AT_FIELD_NUMBER: _ClassVar[int]
    INVOICE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    flow_number: str
    issuer_siret: str
    deposited_at: _timestamp_pb2.Timestamp
    invoice_number: str
    document: str
    reason: str
    def __init__(self, flow_number: _Optional[str] = ..., issuer_siret: _Optional[str] = ..., deposited_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., invoice_number: _Optional[str] = ..., document: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListRejectsResponse(_message.Message):
    __slots__ = ("rejects",)
    REJECTS_FIELD_NUMBER: _ClassVar[int]
    rejects: _containers.RepeatedCompositeFieldContainer[Reject]
    def __init__(self, rejects: _Optional[_Iterable[_Union[Reject, _Mapping]]] = ...) -> None: ...

class AddWebhookRequest(_message.Message):
    __slots__ = ("owner_kind", "owner", "url", "secret", "statuses", "format")
    OWNER_KIND_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    owner_kind: str
    owner: str
    url: str
    secret: str
    statuses: _containers.RepeatedScalarFieldContainer[_flows_pb2.FlowStatus]
    format: str
    def __init__(self, owner_kind: _Optional[str] = ..., owner: _Optional[str] = ..., url: _Optional[str] = ..., secret: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[_flows_pb2.FlowStatus, str]]] = ..., format: _Optional[str] = ...) -> None: ...

class Webhook(_message.Message):
    __slots__ = ("id", "siret", "owner_kind", "owner", "url", "statuses", "format", "created_at", "created_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIRET_FIELD_NUMBER: _ClassVar[int]
    OWNER_KIND_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    id: int
    siret: str
    owner_kind: str
    owner: str
    url: str
    statuses: _containers.RepeatedScalarFieldContainer[_flows_pb2.FlowStatus]
    format: str
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    def __init__(self, id: _Optional[int] = ..., siret: _Optional[str] = ..., owner_kind: _Optional[str] = ..., owner: _Optional[str] = ..., url: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[_flows_pb2.FlowStatus, str]]] = ..., format: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ...) -> None: ...

class AddWebhookResponse(_message.Message):
    __slots__ = ("webhook", "secret")
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    webhook: Webhook
    secret: str
    def __init__(self, webhook: _Optional[_Union[Webhook, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListWebhooksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWebhooksResponse(_message.Message):
    __slots__ = ("webhooks",)
    WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    webhooks: _containers.RepeatedCompositeFieldContainer[Webhook]
    def __init__(self, webhooks: _Optional[_Iterable[_Union[Webhook, _Mapping]]] = ...) -> None: ...

class RemoveWebhookRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ListWebhookDeliveriesRequest(_message.Message):
    __slots__ = ("webhook_id", "dead_only", "limit")
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    DEAD_ONLY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    webhook_id: int
    dead_only: bool
    limit: int
    def __init__(self, webhook_id: _Optional[int] = ..., dead_only: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("id", "webhook_id", "flow_number", "status", "previous_status", "at", "state", "attempts", "next_attempt_at", "last_attempt_at", "last_error", "cursor")
    ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    FLOW_NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    id: int
    webhook_id: int
    flow_number: str
    status: _flows_pb2.FlowStatus
    previous_status: _flows_pb2.FlowStatus
    at: _timestamp_pb2.Timestamp
    state: str
    attempts: int
    next_attempt_at: _timestamp_pb2.Timestamp
    last_attempt_at: _timestamp_pb2.Timestamp
    last_error: str
    cursor: int
    def __init__(self, id: _Optional[int] = ..., webhook_id: _Optional[int] = ..., flow_number: _Optional[str] = ..., status: _Optional[_Union[_flows_pb2.FlowStatus, str]] = ..., previous_status: _Optional[_Union[_flows_pb2.FlowStatus, str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[str] = ..., attempts: _Optional[int] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., cursor: _Optional[int] = ...) -> None: ...

class ListWebhookDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[WebhookDelivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[WebhookDelivery, _Mapping]]] = ...) -> None: ...

class RedeliverWebhookRequest(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: int
    def __init__(self, delivery_id: _Optional[int] = ...) -> None: ...
