"""Flow numbers (DESIGN §5): 25 characters, partner code + interface number + 15-digit sequence."""

from __future__ import annotations

import pytest

from engine.flownumber import MAX_SEQUENCE, FlowNumber, format_flow_number, parse_flow_number
from engine.model import Syntax


def test_format_matches_design_example() -> None:
    """Partner AAA001 depositing IN_DP_E1_UBL_INVOICE, sequence 42 → AAA0011100000000000000042."""
    number = format_flow_number("AAA001", Syntax.UBL_INVOICE.interface_number, 42)
    assert number == "AAA0011100000000000000042"
    assert len(number) == 25


@pytest.mark.parametrize("sequence", [1, 42, MAX_SEQUENCE])
def test_round_trip(sequence: int) -> None:
    """Formatting then parsing gives the parts back; str(FlowNumber) formats it again."""
    text = format_flow_number("CPP001", "1117", sequence)
    parsed = parse_flow_number(text)
    assert parsed == FlowNumber("CPP001", "1117", sequence)
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("partner", "interface", "sequence", "message"),
    [
        ("aaa001", "1100", 1, "partner code"),
        ("AAA01", "1100", 1, "partner code"),
        ("AAA001", "110", 1, "interface number"),
        ("AAA001", "11A0", 1, "interface number"),
        ("AAA001", "1100", 0, "sequence"),
        ("AAA001", "1100", MAX_SEQUENCE + 1, "sequence"),
    ],
)
def test_format_refuses_bad_parts(partner: str, interface: str, sequence: int, message: str) -> None:
    """A malformed partner code, interface number or out-of-range sequence raises ValueError naming it."""
    with pytest.raises(ValueError, match=message):
        format_flow_number(partner, interface, sequence)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "AAA001110000000000000004",
        "AAA00111000000000000000421",
        "aaa0011100000000000000042",
        "AAA0011100000000000000X42",
        " AAA0011100000000000000042",
    ],
)
def test_parse_refuses_malformed(text: str) -> None:
    """Anything but 25 well-placed characters is refused."""
    with pytest.raises(ValueError, match="flow number"):
        parse_flow_number(text)


def test_every_syntax_has_a_four_digit_interface_number() -> None:
    """Each syntax's interface code yields the four digits a flow number carries."""
    for syntax in Syntax:
        assert len(syntax.interface_number) == 4 and syntax.interface_number.isdigit()
        assert format_flow_number("CPP001", syntax.interface_number, 1)[6:10] == syntax.interface_number
