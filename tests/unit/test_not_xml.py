"""A document that is not XML is named so (``FILE_NOT_XML``: "Not an invoice (not XML)"), not reported as
badly formed XML; XML with a byte order mark, leading blanks or in UTF-16 is still read as XML."""

from __future__ import annotations

import pytest

from engine.formats.xmlparse import XmlError, parse
from tests import factory

INVOICE = factory.ubl_invoice(factory.integrating("FA-NOT-XML"))


@pytest.mark.parametrize(
    "data",
    [b"hello, this is a text file\n", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", b"%PDF-1.7 not here", b"PK\x03\x04"],
)
def test_a_document_that_is_not_xml_says_so(data: bytes) -> None:
    """Text, an image's header, a stray PDF or zip header: FILE_NOT_XML with the words users read."""
    with pytest.raises(XmlError) as caught:
        parse(data, "doc")
    assert caught.value.finding.code == "FILE_NOT_XML"
    assert caught.value.finding.message.startswith("Not an invoice (not XML)")


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf" + INVOICE,
        b"\n \t" + INVOICE.split(b"?>", 1)[1],  # blanks before the root (a declaration must come first)
        INVOICE.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"),
    ],
)
def test_xml_with_a_bom_blanks_or_in_utf16_is_still_xml(data: bytes) -> None:
    """The check looks past a UTF-8 BOM and blanks, and leaves UTF-16 to the parser."""
    assert parse(data, "doc").getroot() is not None
