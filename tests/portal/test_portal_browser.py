"""The portal in a real browser (Debian's Chromium driven by Playwright) against a real daemon subprocess:
the end-to-end journey of issue 19, axe-core on every screen (no serious or critical violation), and a
screenshot of every screen in French and English into docs/screenshots/ for the README.

Skipped when /usr/bin/chromium is absent (``.ci/run`` installs it with apt; no browser is downloaded),
unless ``FLUXDEPOT_TEST_REQUIRE_BROWSER=1``: then they fail."""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.daemon import RunningDaemon, start_daemon
from tests.grpc_support import invoice

CHROMIUM = Path("/usr/bin/chromium")
# CI sets FLUXDEPOT_TEST_REQUIRE_BROWSER=1 (.ci/run installs chromium): there a missing browser fails the
# tests instead of skipping them, so the journeys can never silently stop running.
REQUIRED = os.environ.get("FLUXDEPOT_TEST_REQUIRE_BROWSER") == "1"
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not REQUIRED, reason="Debian's chromium is not installed (/usr/bin/chromium)"
)
if REQUIRED:
    import axe_playwright_python.sync_playwright as axe_api
    import playwright.sync_api as playwright_api
else:
    playwright_api = pytest.importorskip("playwright.sync_api")
    axe_api = pytest.importorskip("axe_playwright_python.sync_playwright")

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
XSS = "<img src=x onerror=alert(1)>.xml"
SUPPLIER = "40483304800022"
SERIOUS = {"serious", "critical"}
REJECTED = Path(__file__).resolve().parents[2] / "config" / "demo" / "invoices" / "rejected" / "unknown_buyer.xml"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    running = start_daemon(tmp_path_factory.mktemp("portal-daemon"))
    yield running
    running.signal(signal.SIGTERM)
    assert running.wait(60) == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(f"FLUXDEPOT_TEST_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield launched
        launched.close()


def _base(daemon: RunningDaemon) -> str:
    return "http://" + str(daemon.ready["http"])


class Screens:
    """Checks each screen with axe-core and keeps its screenshot."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.axe = axe_api.Axe()
        SHOTS.mkdir(parents=True, exist_ok=True)

    def check(self, page: object, name: str) -> None:
        results = self.axe.run(page)
        serious = [v for v in results.response["violations"] if v.get("impact") in SERIOUS]
        assert not serious, f"{name}-{self.lang}: " + results.generate_report()
        page.screenshot(path=str(SHOTS / f"{name}-{self.lang}.png"), full_page=True)  # type: ignore[attr-defined]


def _login(page: object, base: str, login: str, password: str, labels: tuple[str, str, str]) -> None:
    page.goto(base + "/login")  # type: ignore[attr-defined]
    page.get_by_label(labels[0]).fill(login)  # type: ignore[attr-defined]
    page.get_by_label(labels[1]).fill(password)  # type: ignore[attr-defined]
    page.get_by_role("button", name=labels[2]).click()  # type: ignore[attr-defined]


FR_LOGIN = ("Identifiant", "Mot de passe", "Se connecter")
EN_LOGIN = ("Login", "Password", "Log in")


def test_the_whole_journey_in_french(daemon: RunningDaemon, browser: object, tmp_path: Path) -> None:
    """Log in → deposit two files (one named like an XSS) → both turn final live, without reload → check a
    file (its report, not deposited) → search
    by file name → report → two reports as one zip → CSV export → dashboard → a count opens the filtered
    search → a manager adds the profile twice and sees the red message → the viewer without the profile
    sees nothing → a form posted without its CSRF token is refused → log-out ends the session. axe-core
    passes on every screen; each is saved as a screenshot."""
    expect = playwright_api.expect
    base = _base(daemon)
    screens = Screens("fr")
    context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(base + "/login")
    screens.check(page, "login")
    _login(page, base, "manager", "demo-manager-password", FR_LOGIN)
    expect(page.get_by_role("heading", name="Accueil")).to_be_visible()

    # Deposit two files; each flow number shows at once and its status turns final live.
    page.get_by_role("link", name="Déposer").click()
    page.get_by_label("Structure émettrice").select_option(SUPPLIER)
    page.get_by_label("Fichiers (XML, PDF ou zip)").set_input_files(
        [
            {"name": "journey-a.xml", "mimeType": "text/xml", "buffer": invoice("FA-JOURNEY-1")},
            {"name": XSS, "mimeType": "text/xml", "buffer": invoice("FA-JOURNEY-2")},
        ]
    )
    page.get_by_role("button", name="Déposer").click()
    rows = page.locator("tr[data-watch]")
    expect(rows).to_have_count(2)
    expect(page.locator("tr[data-final=true]")).to_have_count(2, timeout=60_000)
    expect(rows.first.locator("[data-status]")).to_have_text("Intégré")
    numbers = [rows.nth(i).get_attribute("data-flow") for i in range(2)]
    expect(page.get_by_text(XSS, exact=True)).to_be_visible()
    screens.check(page, "deposit")

    # Check a file: the report it would get, nothing deposited.
    page.get_by_role("link", name="Contrôler un fichier").click()
    page.get_by_label("Structure émettrice").select_option(SUPPLIER)
    page.get_by_label("Fichier (XML, PDF ou zip)").set_input_files(
        [{"name": "a-verifier.xml", "mimeType": "text/xml", "buffer": REJECTED.read_bytes()}]
    )
    page.get_by_role("button", name="Contrôler", exact=True).click()
    expect(page.get_by_role("heading", name="Compte rendu du contrôle (non déposé)")).to_be_visible()
    expect(page.locator("section[aria-labelledby=r-result] [data-status]")).to_have_text("Rejeté")
    expect(page.get_by_role("cell", name="BUYER_UNKNOWN")).to_be_visible()
    screens.check(page, "check")

    # Search by file name, open the report.
    page.get_by_role("link", name="Rechercher").click()
    page.get_by_text("Critères avancés").click()
    page.get_by_label("Nom du fichier").fill("journey-a")
    page.get_by_role("button", name="Rechercher").click()
    expect(page.get_by_text("1 flux trouvé(s).")).to_be_visible()
    screens.check(page, "search")
    page.get_by_role("link", name=f"Consulter le compte rendu d'intégration de {numbers[0]}").click()
    expect(page.get_by_role("heading", name="1. Nom du fichier déposé")).to_be_visible()
    expect(page.get_by_role("definition").filter(has_text="journey-a.xml")).to_be_visible()
    screens.check(page, "report")

    # Two reports as one zip, and the CSV export of the whole result.
    page.goto(base + "/search?run=1&file_name=journey")
    page.get_by_label("Nom du fichier").fill("o")  # both files: "journey-a.xml" and the XSS one
    page.get_by_role("button", name="Rechercher").click()
    for number in numbers:
        page.get_by_label(f"Sélectionner le flux {number}").check()
    with page.expect_download() as zipped:
        page.get_by_role("button", name="Télécharger les comptes rendus").click()
    with zipfile.ZipFile(zipped.value.path()) as archive:
        assert sorted(archive.namelist()) == sorted(f"{n}.json" for n in numbers)
    with page.expect_download() as exported:
        page.get_by_role("link", name="Exporter les résultats").click()
    rows_csv = list(csv.DictReader(io.StringIO(Path(exported.value.path()).read_text(encoding="utf-8"))))
    assert {r["flow_number"] for r in rows_csv} >= set(numbers)
    assert XSS in {r["file_name"] for r in rows_csv}

    # Dashboard: a count opens the search with its filters.
    page.get_by_role("link", name="Tableau de bord").click()
    page.get_by_label("Émetteur").select_option(SUPPLIER)
    page.get_by_role("button", name="Afficher").click()
    screens.check(page, "dashboard")
    page.locator("table.counts a").first.click()
    expect(page).to_have_url(re.compile(rf"/search\?run=1&issuer={SUPPLIER}&status=IN_"))
    expect(page.get_by_role("heading", name="Résultats")).to_be_visible()
    expect(page.get_by_label("Émetteur")).to_have_value(SUPPLIER)

    # The homepage shows the XSS file name as text.
    page.get_by_role("link", name="Accueil").click()
    expect(page.get_by_text(XSS, exact=True).first).to_be_visible()
    screens.check(page, "home")

    # Manage permissions: adding the profile twice shows the red message.
    page.get_by_role("link", name="Gérer les habilitations des utilisateurs").click()
    page.get_by_label("Structure").select_option(SUPPLIER)
    page.get_by_label("Utilisateur").select_option("viewer")
    page.get_by_role("button", name="Afficher").click()
    page.get_by_role("button", name="Ajouter").click()
    expect(page.get_by_role("status")).to_have_text("Le profil « Suivi des flux de consultation » a été ajouté.")
    page.get_by_role("button", name="Ajouter").click()
    message = page.get_by_role("alert")
    expect(message).to_have_text("L'utilisateur possède déjà l'habilitation sélectionnée")
    assert message.evaluate("e => getComputedStyle(e).color") == "rgb(176, 0, 32)"
    screens.check(page, "users")
    page.get_by_role("button", name="Retirer").click()
    expect(page.get_by_role("status")).to_have_text("Le profil « Suivi des flux de consultation » a été retiré.")
    expect(page.get_by_text("Cet utilisateur n'a aucun profil sur cette structure.")).to_be_visible()

    page.get_by_role("link", name="Accéder aux rejets EDI").click()
    screens.check(page, "rejects")

    # A form posted without its CSRF token is refused; log-out ends the session.
    refused = page.request.post(base + "/logout", form={"nothing": "here"})
    assert refused.status == 403
    cookie = next(c for c in context.cookies() if c["name"] == "fd_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page.get_by_role("heading", name="Se connecter")).to_be_visible()
    replay = browser.new_context(locale="fr-FR")  # type: ignore[attr-defined]
    replay.add_cookies([cookie])
    old = replay.new_page()
    old.goto(base + "/")
    expect(old.get_by_role("heading", name="Se connecter")).to_be_visible()
    replay.close()

    # The viewer, without the profile, sees no flow and no report.
    viewer = browser.new_context(locale="fr-FR").new_page()  # type: ignore[attr-defined]
    _login(viewer, base, "viewer", "demo-viewer-password", FR_LOGIN)
    expect(viewer.get_by_text("Aucun flux à afficher.", exact=False)).to_be_visible()
    viewer.goto(base + "/search?run=1")
    expect(viewer.get_by_text("0 flux trouvé(s).")).to_be_visible()
    assert viewer.goto(base + f"/flows/{numbers[0]}").status == 404  # type: ignore[union-attr]
    screens.check(viewer, "not-found")
    viewer.context.close()
    assert dialogs == []  # the XSS file name never ran
    context.close()


def test_every_screen_in_english(daemon: RunningDaemon, browser: object) -> None:
    """The same screens in English (Accept-Language en), each passing axe-core, each saved; the language
    switch on the page goes back to French."""
    expect = playwright_api.expect
    base = _base(daemon)
    screens = Screens("en")
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(base + "/login")
    screens.check(page, "login")
    _login(page, base, "manager", "demo-manager-password", EN_LOGIN)
    expect(page.get_by_role("heading", name="Homepage")).to_be_visible()
    screens.check(page, "home")
    page.get_by_role("link", name="Deposit").click()
    page.get_by_label("Issuing structure").select_option(SUPPLIER)
    page.get_by_label("Files (XML, PDF or zip)").set_input_files(
        [{"name": "english.xml", "mimeType": "text/xml", "buffer": invoice("FA-EN-1")}]
    )
    page.get_by_role("button", name="Deposit").click()
    expect(page.locator("tr[data-final=true]")).to_have_count(1, timeout=60_000)
    screens.check(page, "deposit")
    number = page.locator("tr[data-watch]").first.get_attribute("data-flow")
    page.get_by_role("link", name="Check a file").click()
    page.get_by_label("File (XML, PDF or zip)").set_input_files(
        [{"name": "to-check.xml", "mimeType": "text/xml", "buffer": REJECTED.read_bytes()}]
    )
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.get_by_role("heading", name="Report of the check (not deposited)")).to_be_visible()
    expect(page.locator("section[aria-labelledby=r-result] [data-status]")).to_have_text("Rejected")
    screens.check(page, "check")
    page.goto(base + "/search?run=1&file_name=english")
    screens.check(page, "search")
    page.goto(base + f"/flows/{number}")
    screens.check(page, "report")
    page.goto(base + "/dashboard")
    screens.check(page, "dashboard")
    page.goto(base + f"/users?siret={SUPPLIER}&login=viewer")
    screens.check(page, "users")
    page.goto(base + "/rejects")
    screens.check(page, "rejects")
    page.goto(base + "/flows/NOPE")
    screens.check(page, "not-found")
    page.get_by_role("link", name="Français").click()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    context.close()


def test_the_portal_is_usable_on_a_phone(daemon: RunningDaemon, browser: object) -> None:
    """On a 390-pixel-wide screen the search page has no horizontal page scroll and its controls are
    reachable with the keyboard (Tab moves focus onto the first criterion)."""
    context = browser.new_context(locale="fr-FR", viewport={"width": 390, "height": 844}, is_mobile=True)  # type: ignore[attr-defined]
    page = context.new_page()
    base = _base(daemon)
    _login(page, base, "manager", "demo-manager-password", FR_LOGIN)
    page.goto(base + "/search?run=1")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.get_by_label("Émetteur").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "status"
    page.screenshot(path=str(SHOTS / "search-phone-fr.png"), full_page=True)
    context.close()
