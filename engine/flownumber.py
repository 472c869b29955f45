"""Flow numbers (DESIGN §5): ``<channel partner code, 6><interface number, 4><sequence, 15>``.

Pure formatting and parsing; the store allocates the sequence (unique, never reused).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PARTNER_CODE = re.compile(r"^[A-Z]{3}[0-9]{3}$")
FLOW_NUMBER = re.compile(r"^([A-Z]{3}[0-9]{3})([0-9]{4})([0-9]{15})$")
MAX_SEQUENCE = 10**15 - 1


@dataclass(frozen=True)
class FlowNumber:
    partner_code: str
    interface_number: str
    sequence: int

    def __str__(self) -> str:
        return format_flow_number(self.partner_code, self.interface_number, self.sequence)


def format_flow_number(partner_code: str, interface_number: str, sequence: int) -> str:
    """``AAA001``, ``1100``, 42 → ``AAA0011100000000000000042``."""
    if not PARTNER_CODE.match(partner_code):
        raise ValueError(f"partner code {partner_code!r} does not match {PARTNER_CODE.pattern}")
    if not (len(interface_number) == 4 and interface_number.isdigit()):
        raise ValueError(f"interface number {interface_number!r} is not 4 digits")
    if not 0 < sequence <= MAX_SEQUENCE:
        raise ValueError(f"sequence {sequence} is out of range")
    return f"{partner_code}{interface_number}{sequence:015d}"


def parse_flow_number(text: str) -> FlowNumber:
    m = FLOW_NUMBER.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a 25-character flow number")
    return FlowNumber(m.group(1), m.group(2), int(m.group(3)))
