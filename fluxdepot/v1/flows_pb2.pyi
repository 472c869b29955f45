import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOW_STATUS_UNSPECIFIED: _ClassVar[FlowStatus]
    FLOW_STATUS_RECEIVED: _ClassVar[FlowStatus]
    FLOW_STATUS_PROCESSED_SE_CPP: _ClassVar[FlowStatus]
    FLOW_STATUS_WAITING_FOR_PROCESSING: _ClassVar[FlowStatus]
    FLOW_STATUS_IN_PROGRESS: _ClassVar[FlowStatus]
    FLOW_STATUS_WARNING: _ClassVar[FlowStatus]
    FLOW_STATUS_REJECTED: _ClassVar[FlowStatus]
    FLOW_STATUS_WAITING_FOR_REPROCESSING: _ClassVar[FlowStatus]
    FLOW_STATUS_INTEGRATED: _ClassVar[FlowStatus]
    FLOW_STATUS_PARTIALLY_INTEGRATED: _ClassVar[FlowStatus]

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_EDI: _ClassVar[Channel]
    CHANNEL_API: _ClassVar[Channel]
    CHANNEL_PORTAL: _ClassVar[Channel]

class ReportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_FORMAT_UNSPECIFIED: _ClassVar[ReportFormat]
    REPORT_FORMAT_JSON: _ClassVar[ReportFormat]
    REPORT_FORMAT_XML: _ClassVar[ReportFormat]
FLOW_STATUS_UNSPECIFIED: FlowStatus
FLOW_STATUS_RECEIVED: FlowStatus
FLOW_STATUS_PROCESSED_SE_CPP: FlowStatus
FLOW_STATUS_WAITING_FOR_PROCESSING: FlowStatus
FLOW_STATUS_IN_PROGRESS: FlowStatus
FLOW_STATUS_WARNING: FlowStatus
FLOW_STATUS_REJECTED: FlowStatus
FLOW_STATUS_WAITING_FOR_REPROCESSING: FlowStatus
FLOW_STATUS_INTEGRATED: FlowStatus
FLOW_STATUS_PARTIALLY_INTEGRATED: FlowStatus
CHANNEL_UNSPECIFIED: Channel
CHANNEL_EDI: Channel
CHANNEL_API: Channel
CHANNEL_PORTAL: Channel
REPORT_FORMAT_UNSPECIFIED: ReportFormat
REPORT_FORMAT_JSON: ReportFormat
REPORT_FORMAT_XML: ReportFormat

class DepositRequest(_message.Message):
    __slots__ = ("file_name", "content", "syntax", "issuer_siret", "with_signature", "tracking_id", "sha256")
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SYNTAX_FIELD_NUMBER: _ClassVar[int]
    ISSUER_SIRET_FIELD_NUMBER: _ClassVar[int]
    WITH_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    file_name: str
    content: bytes
    syntax: str
    issuer_siret: str
    with_signature: bool
    tracking_id: str
    sha256: str
    def __init__(self, file_name: _Optional[str] = ..., content: _Optional[bytes] = ..., syntax: _Optional[str] = ..., issuer_siret: _Optional[str] = ..., with_signature: _Optional[bool] = ..., tracking_id: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class DepositChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: DepositRequest
    data: bytes
    def __init__(self, header: _Optional[_Union[DepositRequest, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class DepositResponse(_message.Message):
    __slots__ = ("flow_number", "deposited_at", "syntax", "status", "sha256", "already_deposited", "status_code", "flow")
    FLOW_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DEPOSITED_AT_FIELD_NUMBER: _ClassVar[int]
    SYNTAX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ALREADY_DEPOSITED_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    flow_number: str
    deposited_at: _timestamp_pb2.Timestamp
    syntax: str
    status: FlowStatus
    sha256: str
    already_deposited: bool
    status_code: str
    flow: Flow
    def __init__(self, flow_number: _Optional[str] = ..., deposited_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., syntax: _Optional[str] = ..., status: _Optional[_Union[FlowStatus, str]] = ..., sha256: _Optional[str] = ..., already_deposited: _Optional[bool] = ..., status_code: _Optional[str] = ..., flow: _Optional[_Union[Flow, _Mapping]] = ...) -> None: ...

class GetFlowRequest(_message.Message):
    __slots__ = ("flow_number",)
    FLOW_NUMBER_FIELD_NUMBER: _ClassVar[int]
    flow_number: str
    def __init__(self, flow_number: _Optional[str] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ("flow_number", "file_name", "syntax", "interface_code", "channel", "issuer_siret", "depositor", "status", "status_code", "deposited_at", "status_changed_at", "invoice_count", "integrated_count", "rejected_count", "size_bytes", "sha256", "tracking_id", "status_label", "final", "partner_code")
    FLOW_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    SYNTAX_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_CODE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ISSUER_SIRET_FIELD_NUMBER: _ClassVar[int]
    DEPOSITOR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    DEPOSITED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    INVOICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    INTEGRATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_LABEL_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    PARTNER_CODE_FIELD_NUMBER: _ClassVar[int]
    flow_number: str
    file_name: str
    syntax: str
    interface_code: str
    channel: Channel
    issuer_siret: str
    depositor: str
    status: FlowStatus
    status_code: str
    deposited_at: _timestamp_pb2.Timestamp
    status_changed_at: _timestamp_pb2.Timestamp
    invoice_count: int
    integrated_count: int
    rejected_count: int
    size_bytes: int
    sha256: str
    tracking_id: str
    status_label: str
    final: bool
    partner_code: str
    def __init__(self, flow_number: _Optional[str] = ..., file_name: _Optional[str] = ..., syntax: _Optional[str] = ..., interface_code: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., issuer_siret: _Optional[str] = ..., depositor: _Optional[str] = ..., status: _Optional[_Union[FlowStatus, str]] = ..., status_code: _Optional[str] = ..., deposited_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., invoice_count: _Optional[int] = ..., integrated_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., tracking_id: _Optional[str] = ..., status_label: _Optional[str] = ..., final: _Optional[bool] = ..., partner_code: _Optional[str] = ...) -> None: ...

class GetReportRequest(_message.Message):
    __slots__ = ("flow_number", "format")
    FLOW_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    flow_number: str
    format: ReportFormat
    def __init__(self, flow_number: _Optional[str] = ..., format: _Optional[_Union[ReportFormat, str]] = ...) -> None: ...

class ReportError(_message.Message):
    __slots__ = ("code", "kind", "severity", "message", "rule", "business_term", "location", "document", "hint")
    CODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    BUSINESS_TERM_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    HINT_FIELD_NUMBER: _ClassVar[int]
    code: str
    kind: str
    severity: str
    message: str
    rule: str
    business_term: str
    location: str
    document: str
    hint: str
    def __init__(self, code: _Optional[str] = ..., kind: _Optional[str] = ..., severity: _Optional[str] = ..., message: _Optional[str] = ..., rule: _Optional[str] = ..., business_term: _Optional[str] = ..., location: _Optional[str] = ..., document: _Optional[str] = ..., hint: _Optional[str] = ...) -> None: ...

class ReportInvoice(_message.Message):
    __slots__ = ("document", "number", "supplier", "buyer", "service_code", "engagement_number", "amount", "status", "errors", "currency")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_FIELD_NUMBER: _ClassVar[int]
    BUYER_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CODE_FIELD_NUMBER: _ClassVar[int]
    ENGAGEMENT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    document: str
    number: str
    supplier: str
    buyer: str
    service_code: str
    engagement_number: str
    amount: str
    status: str
    errors: _containers.RepeatedCompositeFieldContainer[ReportError]
    currency: str
    def __init__(self, document: _Optional[str] = ..., number: _Optional[str] = ..., supplier: _Optional[str] = ..., buyer: _Optional[str] = ..., service_code: _Optional[str] = ..., engagement_number: _Optional[str] = ..., amount: _Optional[str] = ..., status: _Optional[str] = ..., errors: _Optional[_Iterable[_Union[ReportError, _Mapping]]] = ..., currency: _Optional[str] = ...) -> None: ...

class StatusChange(_message.Message):
    __slots__ = ("status", "status_code", "event", "at", "actor", "detail")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    status: FlowStatus
    status_code: str
    event: str
    at: _timestamp_pb2.Timestamp
    actor: str
    detail: str
    def __init__(self, status: _Optional[_Union[FlowStatus, str]] = ..., status_code: _Optional[str] = ..., event: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class NextAction(_message.Message):
    __slots__ = ("code", "message", "invoice_numbers")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    INVOICE_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    invoice_numbers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., invoice_numbers: _Optional[_Iterable[str]] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("flow", "history", "invoices", "errors", "warnings", "return_flows", "next_action", "engine_version", "ruleset_version", "format", "content", "content_type", "file_name")
    FLOW_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    INVOICES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    RETURN_FLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ACTION_FIELD_NUMBER: _ClassVar[int]
    ENGINE_VERSION_FIELD_NUMBER: _ClassVar[int]
    RULESET_VERSION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    flow: Flow
    history: _containers.RepeatedCompositeFieldContainer[StatusChange]
    invoices: _containers.RepeatedCompositeFieldContainer[ReportInvoice]
    errors: _containers.RepeatedCompositeFieldContainer[ReportError]
    warnings: _containers.RepeatedCompositeFieldContainer[ReportError]
    return_flows: _containers.RepeatedScalarFieldContainer[str]
    next_action: NextAction
    engine_version: str
    ruleset_version: str
    format: ReportFormat
    content: bytes
    content_type: str
    file_name: str
    def __init__(self, flow: _Optional[_Union[Flow, _Mapping]] = ..., history: _Optional[_Iterable[_Union[StatusChange, _Mapping]]] = ..., invoices: _Optional[_Iterable[_Union[ReportInvoice, _Mapping]]] = ..., errors: _Optional[_Iterable[_Union[ReportError, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[ReportError, _Mapping]]] = ..., return_flows: _Optional[_Iterable[str]] = ..., next_action: _Optional[_Union[NextAction, _Mapping]] = ..., engine_version: _Optional[str] = ..., ruleset_version: _Optional[str] = ..., format: _Optional[_Union[ReportFormat, str]] = ..., content: _Optional[bytes] = ..., content_type: _Optional[str] = ..., file_name: _Optional[str] = ...) -> None: ...

class DownloadReportsRequest(_message.Message):
    __slots__ = ("flow_numbers", "format")
    FLOW_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    flow_numbers: _containers.RepeatedScalarFieldContainer[str]
    format: ReportFormat
    def __init__(self, flow_numbers: _Optional[_Iterable[str]] = ..., format: _Optional[_Union[ReportFormat, str]] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("data", "file_name", "content_type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    file_name: str
    content_type: str
    def __init__(self, data: _Optional[bytes] = ..., file_name: _Optional[str] = ..., content_type: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("issuer_sirets", "statuses", "syntaxes", "deposited_from", "deposited_to", "flow_number", "file_name", "channel", "sha256", "tracking_id", "updated_after", "page_size", "page_token")
    ISSUER_SIRETS_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    SYNTAXES_FIELD_NUMBER: _ClassVar[int]
    DEPOSITED_FROM_FIELD_NUMBER: _ClassVar[int]
    DEPOSITED_TO_FIELD_NUMBER: _ClassVar[int]
    FLOW_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    issuer_sirets: _containers.RepeatedScalarFieldContainer[str]
    statuses: _containers.RepeatedScalarFieldContainer[FlowStatus]
    syntaxes: _containers.RepeatedScalarFieldContainer[str]
    deposited_from: _timestamp_pb2.Timestamp
    deposited_to: _timestamp_pb2.Timestamp
    flow_number: str
    file_name: str
    channel: Channel
    sha256: str
    tracking_id: str
    updated_after: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, issuer_sirets: _Optional[_Iterable[str]] = ..., statuses: _Optional[_Iterable[_Union[FlowStatus, str]]] = ..., syntaxes: _Optional[_Iterable[str]] = ..., deposited_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deposited_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., flow_number: _Optional[str] = ..., file_name: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., sha256: _Optional[str] = ..., tracking_id: _Optional[str] = ..., updated_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("flows", "next_page_token", "total_count")
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[Flow]
    next_page_token: str
    total_count: int
    def __init__(self, flows: _Optional[_Iterable[_Union[Flow, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_count: _Optional[int] = ...) -> None: ...

class DashboardRequest(_message.Message):
    __slots__ = ("issuer_sirets", "syntaxes", "deposited_from", "deposited_to", "top_errors")
    ISSUER_SIRETS_FIELD_NUMBER: _ClassVar[int]
    SYNTAXES_FIELD_NUMBER: _ClassVar[int]
    DEPOSITED_FROM_FIELD_NUMBER: _ClassVar[int]
    DEPOSITED_TO_FIELD_NUMBER: _ClassVar[int]
    TOP_ERRORS_FIELD_NUMBER: _ClassVar[int]
    issuer_sirets: _containers.RepeatedScalarFieldContainer[str]
    syntaxes: _containers.RepeatedScalarFieldContainer[str]
    deposited_from: _timestamp_pb2.Timestamp
    deposited_to: _timestamp_pb2.Timestamp
    top_errors: int
    def __init__(self, issuer_sirets: _Optional[_Iterable[str]] = ..., syntaxes: _Optional[_Iterable[str]] = ..., deposited_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deposited_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., top_errors: _Optional[int] = ...) -> None: ...

class StatusCount(_message.Message):
    __slots__ = ("issuer_siret", "status", "status_code", "count", "status_label")
    ISSUER_SIRET_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_LABEL_FIELD_NUMBER: _ClassVar[int]
    issuer_siret: str
    status: FlowStatus
    status_code: str
    count: int
    status_label: str
    def __init__(self, issuer_siret: _Optional[str] = ..., status: _Optional[_Union[FlowStatus, str]] = ..., status_code: _Optional[str] = ..., count: _Optional[int] = ..., status_label: _Optional[str] = ...) -> None: ...

class OldestFlow(_message.Message):
    __slots__ = ("status", "status_code", "since", "age_seconds")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    status: FlowStatus
    status_code: str
    since: _timestamp_pb2.Timestamp
    age_seconds: float
    def __init__(self, status: _Optional[_Union[FlowStatus, str]] = ..., status_code: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., age_seconds: _Optional[float] = ...) -> None: ...

class ErrorCount(_message.Message):
    __slots__ = ("code", "rule", "count")
    CODE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    code: str
    rule: str
    count: int
    def __init__(self, code: _Optional[str] = ..., rule: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class DashboardResponse(_message.Message):
    __slots__ = ("rows", "totals", "oldest", "top_errors", "total_count", "stuck")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    OLDEST_FIELD_NUMBER: _ClassVar[int]
    TOP_ERRORS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    STUCK_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[StatusCount]
    totals: _containers.RepeatedCompositeFieldContainer[StatusCount]
    oldest: _containers.RepeatedCompositeFieldContainer[OldestFlow]
    top_errors: _containers.RepeatedCompositeFieldContainer[ErrorCount]
    total_count: int
    stuck: _containers.RepeatedCompositeFieldContainer[StatusCount]
    def __init__(self, rows: _Optional[_Iterable[_Union[StatusCount, _Mapping]]] = ..., totals: _Optional[_Iterable[_Union[StatusCount, _Mapping]]] = ..., oldest: _Optional[_Iterable[_Union[OldestFlow, _Mapping]]] = ..., top_errors: _Optional[_Iterable[_Union[ErrorCount, _Mapping]]] = ..., total_count: _Optional[int] = ..., stuck: _Optional[_Iterable[_Union[StatusCount, _Mapping]]] = ...) -> None: ...

class WatchFlowsRequest(_message.Message):
    __slots__ = ("cursor", "issuer_sirets", "statuses", "from_start")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    ISSUER_SIRETS_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    FROM_START_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    issuer_sirets: _containers.RepeatedScalarFieldContainer[str]
    statuses: _containers.RepeatedScalarFieldContainer[FlowStatus]
    from_start: bool
    def __init__(self, cursor: _Optional[int] = ..., issuer_sirets: _Optional[_Iterable[str]] = ..., statuses: _Optional[_Iterable[_Union[FlowStatus, str]]] = ..., from_start: _Optional[bool] = ...) -> None: ...

class FlowEvent(_message.Message):
    __slots__ = ("cursor", "flow_number", "issuer_siret", "status", "status_code", "event", "at", "final")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    FLOW_NUMBER_FIELD_NUMBER: _ClassVar[int]
    ISSUER_SIRET_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    flow_number: str
    issuer_siret: str
    status: FlowStatus
    status_code: str
    event: str
    at: _timestamp_pb2.Timestamp
    final: bool
    def __init__(self, cursor: _Optional[int] = ..., flow_number: _Optional[str] = ..., issuer_siret: _Optional[str] = ..., status: _Optional[_Union[FlowStatus, str]] = ..., status_code: _Optional[str] = ..., event: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., final: _Optional[bool] = ...) -> None: ...
