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
    __slots__ = ("login", "siret", "rotate")
    LOGIN_FIELD_NUMBER: _ClassVar[int]
    SIRET_FIELD_NUMBER: _ClassVar[int]
    ROTATE_FIELD_NUMBER: _ClassVar[int]
    login: str
    siret: str
    rotate: bool
    def __init__(self, login: _Optional[str] = ..., siret: _Optional[str] = ..., rotate: _Optional[bool] = ...) -> None: ...

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
    __slots__ = ("code", "siret", "public_keys", "status_files")
    CODE_FIELD_NUMBER: _ClassVar[int]
    SIRET_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FILES_FIELD_NUMBER: _ClassVar[int]
    code: str
    siret: str
    public_keys: _containers.RepeatedScalarFieldContainer[str]
    status_files: bool
    def __init__(self, code: _Optional[str] = ..., siret: _Optional[str] = ..., public_keys: _Optional[_Iterable[str]] = ..., status_files: _Optional[bool] = ...) -> None: ...

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
