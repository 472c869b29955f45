"""A flow's status in Chorus Pro's CPPStatut shape (``CPPStatutPivot_V1_19``, domain.md §4.3).

For EDI software that already reads Chorus Pro's status returns: one ``CPPFluxStatutUnitaire`` with the
flow status code (90 received, 93 reception error, 96 received with partial integration) and one
``LigneErreurDetail`` per error of the integration report (flow-level errors, then each invoice's).
A rendering of the typed ``engine.report.Report``, so it can never disagree with the report.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # builds and serialises only; never parses input

from engine.report import Report, ReportEntry, iso_millis
from engine.status import FlowStatus

CPPSTATUT_VERSION = "1.19"
RECEIVED = "90"
RECEPTION_ERROR = "93"
PARTIAL_INTEGRATION = "96"
_STATUS_CODES = {
    FlowStatus.INTEGRATED: RECEIVED,
    FlowStatus.PARTIALLY_INTEGRATED: PARTIAL_INTEGRATION,
    FlowStatus.REJECTED: RECEPTION_ERROR,
    FlowStatus.WARNING: RECEPTION_ERROR,
}
_MAX_COMPLEMENT = 40


def cppstatut_name(partner_code: str, flow_number: str) -> str:
    return f"CPPStatut_{partner_code}_{flow_number}.xml"


def flow_status_code(report: Report) -> str:
    return _STATUS_CODES.get(report.flow.status, RECEPTION_ERROR)


def _error_lines(report: Report) -> list[ReportEntry]:
    lines = list(report.errors)
    for invoice in report.invoices:
        lines.extend(invoice.errors)
    return lines


def _text(parent: ET.Element, tag: str, value: object) -> ET.Element:
    child = ET.SubElement(parent, tag)
    child.text = str(value)
    return child


def render_cppstatut(report: Report, *, sender_id: str, produced_at: str) -> bytes:
    """The CPPStatut document for a final flow's ``report``; ``sender_id`` is the gateway's code."""
    root = ET.Element("CPPStatut", {"Version": CPPSTATUT_VERSION})
    envelope = ET.SubElement(ET.SubElement(root, "Enveloppe"), "EnveloppeUnitaire", {"NumOrdre": "1"})
    parameters = ET.SubElement(envelope, "Parametres")
    flow = report.flow
    for n, (code, value) in enumerate((("DtPrd", produced_at), ("IdFlx", flow.flow_number)), start=1):
        parameter = ET.SubElement(parameters, "ParametreIndiv", {"NumOrdre": f"{n:04d}"})
        _text(parameter, "Code", code)
        _text(parameter, "Valeurparametre", value)
    partners = ET.SubElement(envelope, "Partenaires")
    _text(ET.SubElement(partners, "Recepteur"), "Id", flow.partner_code)
    _text(ET.SubElement(partners, "Emetteur"), "Id", sender_id)
    statuses = ET.SubElement(root, "CPPFluxStatuts", {"compteur": "1"})
    data = ET.SubElement(ET.SubElement(statuses, "CPPFluxStatutUnitaire", {"NumOrdre": "1"}), "DonneesStatut")
    _text(data, "IdStatut", flow_status_code(report))
    _text(data, "ComplementStatut", flow.status.label_fr[:_MAX_COMPLEMENT])
    _text(data, "Commentaire", report.next_action.message)
    _text(data, "Horodatage", iso_millis(flow.status_changed_at))
    _text(data, "IdFlux", flow.flow_number)
    errors = _error_lines(report)
    if errors:
        details = ET.SubElement(data, "Details", {"NbLignesErreur": str(len(errors))})
        for n, error in enumerate(errors, start=1):
            line = ET.SubElement(details, "LigneErreurDetail", {"IdLigne": str(n)})
            _text(line, "NatureErreur", error.kind.value)
            _text(line, "CodeErreur", error.code)
            _text(line, "LibelleErreur", error.message)
            where = " ".join(p for p in (error.document, error.location) if p)
            description = "; ".join(p for p in (where, error.hint) if p)
            if description:
                _text(line, "DescriptionErreur", description)
    ET.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"
