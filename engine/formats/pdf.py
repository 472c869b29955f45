"""Extract the embedded invoice XML (Factur-X / ZUGFeRD / XRechnung attachment) from a PDF, on a budget.

Uses pypdf (maintained, pure Python, non-strict mode so real-world PDFs with a damaged cross-reference
table still open), with every limit of ``engine.model.Limits`` checked before the bytes it guards are
expanded. Invariants:

* Objects (``PDF_TOO_MANY_OBJECTS``): before pypdf sees the file, its `` obj`` keywords are counted
  (what pypdf's cross-reference repair would index); while pypdf reads a cross-reference table, the
  entries it declares are counted before they are read, and cross-reference streams are capped by
  pypdf's own ``xref_stream_maximum_entries``; an object stream declaring more than
  ``max_pdf_objects`` objects is refused before it is decompressed.
* Structure streams (``PDF_STRUCTURE_TOO_LARGE``): before pypdf sees the file, the names of its object
  and cross-reference streams are counted (``/ObjStm``, ``/XRef``, ``#``-escapes included), and pypdf
  inflates each of them under ``max_pdf_stream_bytes`` divided by that count: together they stay under
  it, whether read through the cross-reference, along a ``/Prev`` chain or by pypdf's repair of a
  damaged file (which inflates every object stream it finds). The object streams decoded to find the
  attachments are also summed as they are read. pypdf's other structural guards (array and dictionary
  sizes, cycles) give this code too.
* Attachments: the EmbeddedFiles name tree is walked here, nodes visited once, to a bounded depth. More
  than ``max_pdf_attachments`` gives ``PDF_TOO_MANY_ATTACHMENTS``; an attachment whose size (its
  ``/Params /Size``, else its stored ``/Length``) exceeds ``max_pdf_attachment_bytes`` gives
  ``PDF_ATTACHMENT_TOO_LARGE``, their sum over ``max_pdf_attachments_total_bytes``
  ``PDF_ATTACHMENTS_TOO_LARGE``. No attachment is decompressed but the invoice XML, and that one under
  a cap of ``max_xml_bytes`` (``XML_TOO_LARGE``), whatever size it declares.
* The XML attachment is preferred by its conventional name (``factur-x.xml`` first), else the first
  ``.xml`` attachment. A PDF without one gives ``PDF_NO_XML``; a PDF pypdf cannot open, or whose
  attachments cannot be listed, gives ``PDF_UNREADABLE``.
* The XML itself is not parsed here: the caller hands the bytes to ``engine.formats.xmlparse``.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pypdf
from pypdf.errors import LimitReachedError, PyPdfError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, PdfObject, StreamObject

from engine.catalogue import finding
from engine.model import Finding, Limits

# ``/ObjStm`` and ``/XRef`` as names, any character possibly written as ``#xx`` (pypdf decodes those).
_STRUCTURE_NAMES = re.compile(
    rb"/(?:O|#4[fF])(?:b|#62)(?:j|#6[aA])(?:S|#53)(?:t|#74)(?:m|#6[dD])|/(?:X|#58)(?:R|#52)(?:e|#65)(?:f|#66)"
)
# Conventional attachment names, most specific first (Factur-X 1.0, ZUGFeRD 2.x, ZUGFeRD 1, XRechnung).
_PREFERRED_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml", "order-x.xml")
_MAX_NAME_TREE_DEPTH = 32
# pypdf's decoders, each capped at the same output size (``apply_configuration``).
_DECODER_CAPS = (
    "zlib_maximum_output_length",
    "lzw_maximum_output_length",
    "run_length_maximum_output_length",
    "brotli_maximum_output_length",
    "jbig2_maximum_output_length",
    "array_based_stream_maximum_output_length",
)


class PdfError(Exception):
    """The PDF cannot give an invoice XML; ``finding`` says why."""

    def __init__(self, problem: Finding) -> None:
        super().__init__(problem.message)
        self.finding = problem


@dataclass(frozen=True)
class EmbeddedXml:
    attachment_name: str
    data: bytes


@dataclass(frozen=True)
class _Attachment:
    names: tuple[str, ...]  # the name-tree key, then /UF and /F when they differ
    stream: StreamObject
    size_bytes: int  # as declared


class _TooManyObjects(LimitReachedError):
    """A cross-reference table declares more entries than ``max_pdf_objects``."""


def extract_xml(data: bytes, document: str, limits: Limits) -> EmbeddedXml:
    """Return the invoice XML attached to the PDF ``data``; raise ``PdfError`` otherwise."""
    if data.count(b" obj") > limits.max_pdf_objects:
        raise PdfError(_too_many_objects(document, limits))
    structure_streams = sum(1 for _ in _STRUCTURE_NAMES.finditer(data))
    each_stream_bytes = max(limits.max_pdf_stream_bytes // max(structure_streams, 1), 1)
    try:
        with warnings.catch_warnings(), pypdf.apply_configuration(None, **_caps(each_stream_bytes)):
            warnings.simplefilter("ignore")  # pypdf warns on every repaired defect; the verdict is ours
            logging.getLogger("pypdf").setLevel(logging.ERROR)
            swallowed: list[LimitReachedError] = []
            try:
                reader = _BudgetedReader(io.BytesIO(data), limits.max_pdf_objects, swallowed)
            except PyPdfError as exc:
                raise (swallowed[0] if swallowed and _limit_reached(exc) is None else exc) from None
            if swallowed:  # the repair hit a limit and pypdf carried on with what it had
                raise swallowed[0]
            if sum(len(entries) for entries in reader.xref.values()) + len(reader.xref_objStm) > limits.max_pdf_objects:
                raise PdfError(_too_many_objects(document, limits))
            walk = _Walk(reader, limits, document)
            attachments = list(walk.attachments())
            chosen, name = _choose(attachments, document)
            return EmbeddedXml(name, _decode_xml(chosen, name, document, limits.max_xml_bytes))
    except PdfError:
        raise
    except RecursionError:
        raise PdfError(_unreadable(document, "RecursionError")) from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        # pypdf raises a wide range of errors on damaged files; all mean "cannot be read", unless one of
        # its limits (or ours) was reached on the way, which pypdf sometimes wraps in a PdfReadError.
        limit = _limit_reached(exc)
        if limit is not None:
            raise PdfError(_limit_finding(limit, document, limits)) from None
        raise PdfError(_unreadable(document, type(exc).__name__)) from None


def _limit_reached(exc: BaseException | None) -> LimitReachedError | None:
    """The ``LimitReachedError`` among ``exc`` and its causes, if any."""
    for _ in range(8):
        if exc is None or isinstance(exc, LimitReachedError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _limit_finding(exc: LimitReachedError, document: str, limits: Limits) -> Finding:
    """Cross-reference limits are the object budget; pypdf's other limits (inflating, arrays, cycles)
    guard the structure."""
    if isinstance(exc, _TooManyObjects) or "XRef" in str(exc) or "Declared size" in str(exc):
        return _too_many_objects(document, limits)
    return finding(
        "PDF_STRUCTURE_TOO_LARGE",
        f"The PDF exceeds a limit while its structure is read ({str(exc)[:200]}).",
        document=document,
    )


class _BudgetedReader(pypdf.PdfReader):
    """pypdf's reader, refusing a cross-reference table that declares more entries than the budget
    before the entries are read (pypdf caps cross-reference streams itself), and noting the limit its
    cross-reference repair reached (pypdf swallows it and carries on).

    Both hooks override private pypdf methods (pypdf 7.1): the tests of a 1.4-million-entry table and of
    a repair that inflates thousands of object streams fail if pypdf renames them.
    """

    def __init__(self, stream: io.BytesIO, max_objects: int, swallowed: list[LimitReachedError]) -> None:
        self._max_objects = max_objects
        self._declared_entries = 0
        self._swallowed = swallowed
        super().__init__(stream, strict=False, xref_stream_maximum_entries=max_objects)

    def _rebuild_xref_table(self, stream: Any) -> None:
        try:
            super()._rebuild_xref_table(stream)
        except LimitReachedError as exc:
            self._swallowed.append(exc)
            raise

    def _read_standard_xref_table__handle_size(self, stream: Any) -> int | None:
        size = super()._read_standard_xref_table__handle_size(stream)
        self._declared_entries += size or 0
        if self._declared_entries > self._max_objects:
            raise _TooManyObjects(f"cross-reference tables declare {self._declared_entries} entries")
        return size


class _Walk:
    """Resolves objects for the attachment walk, keeping the object streams it decodes on budget."""

    def __init__(self, reader: pypdf.PdfReader, limits: Limits, document: str) -> None:
        self._reader = reader
        self._limits = limits
        self._document = document
        self._object_streams: set[int] = set()
        self._stream_bytes = 0
        self._nodes_seen: set[int] = set()

    def attachments(self) -> Iterator[_Attachment]:
        """The EmbeddedFiles name tree's files, in tree order; refuses past the count and size limits."""
        catalog = self._resolve(self._reader.trailer.raw_get("/Root")) if "/Root" in self._reader.trailer else None
        if not isinstance(catalog, DictionaryObject):
            catalog = self._reader.root_object  # pypdf looks for a catalog the trailer lost
        names = self._dictionary(catalog.raw_get("/Names")) if "/Names" in catalog else DictionaryObject()
        if "/EmbeddedFiles" not in names:
            return
        stack = [(names.raw_get("/EmbeddedFiles"), 0)]
        nodes = count = total_bytes = 0
        while stack:
            reference, depth = stack.pop()
            if isinstance(reference, IndirectObject):
                if reference.idnum in self._nodes_seen:
                    continue
                self._nodes_seen.add(reference.idnum)
            nodes += 1
            if nodes > self._limits.max_pdf_objects:
                raise PdfError(_too_many_objects(self._document, self._limits))
            node = self._dictionary(reference)
            pairs = self._array(node.raw_get("/Names")) if "/Names" in node else ArrayObject()
            for index in range(0, len(pairs) - 1, 2):
                count += 1
                if count > self._limits.max_pdf_attachments:
                    raise self._problem(
                        "PDF_TOO_MANY_ATTACHMENTS",
                        f"The PDF carries more than {self._limits.max_pdf_attachments} attachments.",
                    )
                attachment = self._attachment(self._resolve(pairs[index]), self._resolve(pairs[index + 1]))
                if attachment is None:
                    continue
                if attachment.size_bytes > self._limits.max_pdf_attachment_bytes:
                    raise self._problem(
                        "PDF_ATTACHMENT_TOO_LARGE",
                        f"The attachment {attachment.names[0]!r} declares {attachment.size_bytes} bytes.",
                    )
                total_bytes += attachment.size_bytes
                if total_bytes > self._limits.max_pdf_attachments_total_bytes:
                    raise self._problem("PDF_ATTACHMENTS_TOO_LARGE")
                yield attachment
            if "/Kids" in node and depth < _MAX_NAME_TREE_DEPTH:
                kids = self._array(node.raw_get("/Kids"))
                stack.extend((kid, depth + 1) for kid in reversed(kids))

    def _attachment(self, key: PdfObject | None, spec: PdfObject | None) -> _Attachment | None:
        if not isinstance(spec, DictionaryObject) or "/EF" not in spec:
            return None
        files = self._dictionary(spec.raw_get("/EF"))
        reference = files.raw_get("/UF") if "/UF" in files else files.raw_get("/F") if "/F" in files else None
        stream = self._resolve(reference)
        if not isinstance(stream, StreamObject):
            return None
        names: list[str] = [_text(key)] if isinstance(key, (str, bytes)) else []
        for entry in ("/UF", "/F"):
            value = self._resolve(spec.raw_get(entry)) if entry in spec else None
            if isinstance(value, (str, bytes)) and _text(value) not in names:
                names.append(_text(value))
        if not names:
            return None
        return _Attachment(tuple(names), stream, self._declared_size(stream))

    def _declared_size(self, stream: StreamObject) -> int:
        """The attachment's ``/Params /Size``, else its stored ``/Length`` (0 when neither is a number)."""
        params = self._resolve(stream.raw_get("/Params")) if "/Params" in stream else None
        if isinstance(params, DictionaryObject) and "/Size" in params:
            declared = self._resolve(params.raw_get("/Size"))
            if isinstance(declared, int):
                return max(int(declared), 0)
        stored = self._resolve(stream.raw_get("/Length")) if "/Length" in stream else None
        return max(int(stored), 0) if isinstance(stored, int) else 0

    def _resolve(self, value: Any) -> PdfObject | None:
        """``value``, read when it is a reference; the object stream it lives in is checked first."""
        if not isinstance(value, IndirectObject):
            return value if isinstance(value, PdfObject) else None
        located = self._reader.xref_objStm.get(value.idnum)
        if located is None or located[0] in self._object_streams:
            return value.get_object()
        self._object_streams.add(located[0])
        container = self._reader.get_object(located[0])  # the stream itself: read, not decoded
        if not isinstance(container, StreamObject):
            return None
        declared = container.get("/N")
        if isinstance(declared, int) and declared > self._limits.max_pdf_objects:
            raise PdfError(_too_many_objects(self._document, self._limits))
        resolved = value.get_object()  # decodes the object stream (capped) and caches its objects
        self._stream_bytes += len(container.get_data())  # the decoded copy pypdf keeps
        if self._stream_bytes > self._limits.max_pdf_stream_bytes:
            raise self._problem(
                "PDF_STRUCTURE_TOO_LARGE",
                f"The PDF's object streams expand to more than {self._limits.max_pdf_stream_bytes} bytes.",
            )
        return resolved

    def _dictionary(self, value: Any) -> DictionaryObject:
        resolved = self._resolve(value)
        return resolved if isinstance(resolved, DictionaryObject) else DictionaryObject()

    def _array(self, value: Any) -> ArrayObject:
        resolved = self._resolve(value)
        return resolved if isinstance(resolved, ArrayObject) else ArrayObject()

    def _problem(self, code: str, message: str | None = None) -> PdfError:
        return PdfError(finding(code, message, document=self._document))


def _choose(attachments: list[_Attachment], document: str) -> tuple[_Attachment, str]:
    """The invoice XML attachment and the name it was chosen by."""
    xml = [(a, n) for a in attachments for n in a.names if n.lower().endswith(".xml")]
    if not xml:
        raise PdfError(finding("PDF_NO_XML", document=document))
    for preferred in _PREFERRED_NAMES:
        for attachment, name in xml:
            if name.lower() == preferred:
                return attachment, name
    return xml[0]


def _decode_xml(attachment: _Attachment, name: str, document: str, max_xml_bytes: int) -> bytes:
    """The one attachment decompressed, every pypdf decoder capped at ``max_xml_bytes``."""
    too_large = PdfError(
        finding("XML_TOO_LARGE", f"The embedded {name!r} expands beyond {max_xml_bytes} bytes.", document=document)
    )
    try:
        with pypdf.apply_configuration(None, **_caps(max_xml_bytes)):
            content = attachment.stream.get_data()
    except LimitReachedError:
        raise too_large from None
    if len(content) > max_xml_bytes:
        raise too_large
    return bytes(content)


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("latin-1")


def _caps(max_bytes: int) -> dict[str, int]:
    return dict.fromkeys(_DECODER_CAPS, max_bytes) | {"stream_decoding_work_maximum_length": 4 * max_bytes}


def _too_many_objects(document: str, limits: Limits) -> Finding:
    return finding(
        "PDF_TOO_MANY_OBJECTS", f"The PDF holds more than {limits.max_pdf_objects} objects.", document=document
    )


def _unreadable(document: str, reason: str) -> Finding:
    return finding("PDF_UNREADABLE", f"The PDF file cannot be read ({reason}).", document=document)
