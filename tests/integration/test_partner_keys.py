"""One key, one partner: the store refuses a public key another partner code holds, on SQLite and
PostgreSQL, whether the partner comes from a directory file import or from ``upsert_partner`` (the
``UpsertPartner`` path); a refused write records nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.directory import DirectoryData, Partner, Structure
from engine.directory_file import load_directory
from engine.errors import AlreadyExists
from engine.store.port import Store
from tests.integration.test_store_contract import StoreFactory, factory

__all__ = ["factory"]  # the contract's fixture: one store factory per backend

SUPPLIER = "40483304800022"
NEWCOMER = "73282932000074"
DEMO_KEY_FILE = Path(__file__).resolve().parents[2] / "config" / "demo" / "AAA001_ed25519.pub"
KEY = DEMO_KEY_FILE.read_text().strip()  # "ssh-ed25519 AAAA... AAA001 demo key - ..."
FINGERPRINT = "SHA256:LMSob2CPt+5o+x50yyQH28w53dFXnslPRH4KtsC9rjE"  # ssh-keygen -lf of the demo key
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG3Q3y1y7Q2fKqW5jz0cV0p5b0X9B4m3m9Qw4tJ9m5e2 other"


def _same_key_other_comment(key: str) -> str:
    return " ".join(key.split()[:2]) + " copied@elsewhere"


@pytest.fixture
async def store(factory: StoreFactory) -> AsyncIterator[Store]:
    s = await factory.open()
    try:
        await s.import_directory(DirectoryData(structures=(Structure(SUPPLIER, "Papeterie"),)))
        await s.upsert_partner(Partner("AAA001", SUPPLIER, (KEY,)))
        yield s
    finally:
        await s.close()


async def test_directory_import_refuses_a_key_of_another_partner(store: Store, tmp_path: Path) -> None:
    """A directory file giving partner BBB002 the key AAA001 holds in the store (another comment does not
    make it another key) is refused with AlreadyExists naming both codes and the key's fingerprint, and
    nothing of the file is written, not even its new structure."""
    path = tmp_path / "directory.toml"
    path.write_text(
        f"""
[[structures]]
siret = "{NEWCOMER}"
name = "Nettoyage"

[[partners]]
code = "BBB002"
siret = "{NEWCOMER}"
public_keys = ["{_same_key_other_comment(KEY)}"]
"""
    )
    data = load_directory(path)  # valid on its own: the clash is with the store
    with pytest.raises(AlreadyExists) as caught:
        await store.import_directory(data)
    assert str(caught.value) == (
        f"public key {FINGERPRINT} given to partner BBB002 already belongs to partner AAA001: "
        "a key logs in as one partner only"
    )
    assert await store.get_partner("BBB002") is None
    assert await store.get_structure(NEWCOMER) is None
    partner = await store.get_partner("AAA001")
    assert partner is not None and partner.public_keys == (KEY,)


async def test_upsert_partner_refuses_a_key_of_another_partner(store: Store) -> None:
    """``upsert_partner`` (what UpsertPartner calls) refuses AAA001's key to BBB002 and writes nothing; the
    owner may save its own key again, and once it gives the key up another partner may take it."""
    with pytest.raises(AlreadyExists, match="given to partner BBB002 already belongs to partner AAA001"):
        await store.upsert_partner(Partner("BBB002", SUPPLIER, (OTHER_KEY, KEY)))
    assert await store.get_partner("BBB002") is None

    await store.upsert_partner(Partner("AAA001", SUPPLIER, (_same_key_other_comment(KEY),)))
    await store.upsert_partner(Partner("AAA001", SUPPLIER, (OTHER_KEY,)))
    await store.upsert_partner(Partner("BBB002", SUPPLIER, (KEY,)))
    moved = await store.get_partner("BBB002")
    assert moved is not None and moved.public_keys == (KEY,)


async def test_a_key_moves_between_partners_in_one_import(store: Store) -> None:
    """One import that takes the key from AAA001 and gives it to BBB002 is accepted: the keys the import
    replaces do not count against it."""
    await store.import_directory(
        DirectoryData(partners=(Partner("AAA001", SUPPLIER, (OTHER_KEY,)), Partner("BBB002", SUPPLIER, (KEY,))))
    )
    first, second = await store.get_partner("AAA001"), await store.get_partner("BBB002")
    assert first is not None and first.public_keys == (OTHER_KEY,)
    assert second is not None and second.public_keys == (KEY,)


async def test_concurrent_writers_cannot_both_take_one_key(factory: StoreFactory, store: Store) -> None:
    """Two stores on one database (two daemons) giving one new key to two partner codes at the same time:
    exactly one succeeds, the other gets AlreadyExists."""
    fresh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHfreshkeyfreshkeyfreshkeyfreshkeyfreshkeyfre new"
    second = await factory.open()
    try:
        for round_ in range(5):
            key = fresh.replace("fre new", f"f{round_:02d} new")
            results = await asyncio.gather(
                store.upsert_partner(Partner(f"CCC{round_:03d}", SUPPLIER, (key,))),
                second.upsert_partner(Partner(f"DDD{round_:03d}", SUPPLIER, (key,))),
                return_exceptions=True,
            )
            assert sorted(type(r).__name__ for r in results) == ["AlreadyExists", "NoneType"], results
    finally:
        await second.close()
