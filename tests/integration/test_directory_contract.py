"""One contract for every directory adapter: the built-in directory on fakeredis and on the
real Redis, and the SCIM adapter against a real SCIM server (scim2-server on loopback), once
with every feature announced and once with no PATCH, no ETag and no filter (the fallbacks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from sync.directories.base import Directory, NewDirectoryUser, UserPatch
from sync.directories.builtin import BuiltinDirectory
from sync.directories.scim import ScimDirectory
from sync.errors import (
    DirectoryAuthError,
    DirectoryConflict,
    DirectoryError,
    DirectoryNotFound,
    InputError,
)
from sync.state.keys import Keys
from tests.integration import scim_server as scim_fixtures
from tests.integration.scim_server import ScimServer

scim_server = scim_fixtures.scim_server
scim_server_minimal = scim_fixtures.scim_server_minimal

KINDS = [
    "builtin-fakeredis",
    pytest.param("builtin-redis", marks=pytest.mark.redis),
    "scim",
    "scim-minimal",
]


class RecordingSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def _scim(server: ScimServer, http: httpx.AsyncClient) -> ScimDirectory:
    return ScimDirectory(
        server.base_url, SecretStr(server.token), http=http, sleep=RecordingSleep()
    )


@pytest.fixture(params=KINDS)
def directory(request: pytest.FixtureRequest, keys: Keys) -> Directory:
    kind = request.param
    if kind == "builtin-fakeredis":
        return BuiltinDirectory(request.getfixturevalue("fake_redis"), keys)
    if kind == "builtin-redis":
        return BuiltinDirectory(request.getfixturevalue("real_redis"), keys)
    server = request.getfixturevalue("scim_server" if kind == "scim" else "scim_server_minimal")
    return _scim(server, request.getfixturevalue("http"))


def alice(**kw: object) -> NewDirectoryUser:
    base: dict[str, object] = {
        "first_name": "Alice",
        "last_name": "Liddell",
        "display_name": "Alice Liddell",
        "email": "alice@contoso.example",
        "phones": ("+46701234567", "+4681234567"),
        "tags": ("sales", "stockholm"),
        "entra_id": "entra-alice",
    }
    base.update(kw)
    return NewDirectoryUser(**base)  # type: ignore[arg-type]


# --- create, read, list ---------------------------------------------------------------------


async def test_the_adapter_implements_the_directory_protocol(directory: Directory) -> None:
    assert isinstance(directory, Directory)


async def test_a_created_user_is_returned_by_get_and_list(directory: Directory) -> None:
    created = await directory.create(alice())
    assert created.id
    assert (created.first_name, created.last_name, created.display_name) == (
        "Alice",
        "Liddell",
        "Alice Liddell",
    )
    assert created.email == "alice@contoso.example"
    assert created.phones == ("+46701234567", "+4681234567")
    assert created.tags == ("sales", "stockholm")
    assert created.entra_id == "entra-alice"
    assert created.active is True and created.sync_enabled is True
    assert await directory.get(created.id) == created
    assert list(await directory.list_users()) == [created]


async def test_a_user_created_with_no_fields_has_empty_values(directory: Directory) -> None:
    created = await directory.create(NewDirectoryUser())
    got = await directory.get(created.id)
    assert got is not None
    assert (got.email, got.phones, got.tags, got.entra_id) == (None, (), (), None)


async def test_get_of_an_unknown_id_returns_none(directory: Directory) -> None:
    assert await directory.get("no-such-user") is None


async def test_list_returns_every_user_across_pages(directory: Directory) -> None:
    # the SCIM servers page by at most 50: 120 users take three pages
    created = [
        await directory.create(NewDirectoryUser(email=f"u{i:03d}@contoso.example"))
        for i in range(120)
    ]
    listed = await directory.list_users()
    assert len(listed) == 120
    assert {u.id for u in listed} == {u.id for u in created}
    assert {u.email for u in listed} == {f"u{i:03d}@contoso.example" for i in range(120)}


# --- lookups --------------------------------------------------------------------------------


async def test_find_by_phone_returns_every_user_with_exactly_that_number(
    directory: Directory,
) -> None:
    a = await directory.create(alice())
    b = await directory.create(
        NewDirectoryUser(email="bob@contoso.example", phones=("+46701234567",))
    )
    await directory.create(NewDirectoryUser(email="carol@contoso.example", phones=("+4670123456",)))
    found = await directory.find_by_phone("+46701234567")
    assert sorted(u.id for u in found) == sorted([a.id, b.id])
    assert [u.id for u in await directory.find_by_phone("+4681234567")] == [a.id]
    assert await directory.find_by_phone("+46700000000") == []


async def test_find_by_email_ignores_case(directory: Directory) -> None:
    a = await directory.create(alice(email="Alice@Contoso.example"))
    await directory.create(NewDirectoryUser(email="bob@contoso.example"))
    assert [u.id for u in await directory.find_by_email("alice@CONTOSO.example")] == [a.id]
    assert await directory.find_by_email("nobody@contoso.example") == []


async def test_find_by_external_id_returns_the_linked_user(directory: Directory) -> None:
    a = await directory.create(alice())
    await directory.create(NewDirectoryUser(email="bob@contoso.example", entra_id="entra-bob"))
    found = await directory.find_by_external_id("entra-alice")
    assert found is not None and found.id == a.id
    assert await directory.find_by_external_id("entra-nobody") is None


async def test_lookup_values_with_quotes_match_nothing_else(directory: Directory) -> None:
    await directory.create(alice())
    assert await directory.find_by_external_id('x" or userName pr or externalId eq "x') is None
    assert await directory.find_by_email('a" or emails pr or emails.value eq "a') == []


# --- update ---------------------------------------------------------------------------------


async def test_update_changes_only_the_given_fields(directory: Directory) -> None:
    a = await directory.create(alice())
    updated = await directory.update(
        a.id, UserPatch({"display_name": "Alice L.", "tags": ["support"]})
    )
    assert updated.display_name == "Alice L."
    assert updated.tags == ("support",)
    assert (updated.first_name, updated.last_name, updated.email) == (
        "Alice",
        "Liddell",
        "alice@contoso.example",
    )
    assert updated.phones == a.phones and updated.entra_id == a.entra_id
    assert await directory.get(a.id) == updated


async def test_update_with_none_clears_the_field(directory: Directory) -> None:
    a = await directory.create(alice())
    updated = await directory.update(
        a.id, UserPatch({"first_name": None, "phones": None, "tags": None, "email": None})
    )
    assert (updated.first_name, updated.phones, updated.tags, updated.email) == (None, (), (), None)
    assert updated.last_name == "Liddell"
    assert await directory.get(a.id) == updated


async def test_an_update_moves_the_user_in_the_lookups(directory: Directory) -> None:
    a = await directory.create(alice())
    await directory.update(
        a.id,
        UserPatch(
            {"phones": ["+46709999999"], "email": "a.l@contoso.example", "entra_id": "entra-2"}
        ),
    )
    assert await directory.find_by_phone("+46701234567") == []
    assert [u.id for u in await directory.find_by_phone("+46709999999")] == [a.id]
    assert await directory.find_by_email("alice@contoso.example") == []
    assert [u.id for u in await directory.find_by_email("a.l@contoso.example")] == [a.id]
    assert await directory.find_by_external_id("entra-alice") is None
    found = await directory.find_by_external_id("entra-2")
    assert found is not None and found.id == a.id


async def test_an_update_with_an_unknown_field_is_refused(directory: Directory) -> None:
    a = await directory.create(alice())
    with pytest.raises(InputError, match="nickname"):
        await directory.update(a.id, UserPatch({"nickname": "Al"}))


async def test_update_of_an_unknown_user_raises_not_found(directory: Directory) -> None:
    with pytest.raises(DirectoryNotFound):
        await directory.update("no-such-user", UserPatch({"display_name": "x"}))


async def test_sync_enabled_is_stored_only_by_an_adapter_that_says_so(
    directory: Directory,
) -> None:
    a = await directory.create(alice())
    stores = getattr(directory, "stores_sync_enabled", True)
    if stores:
        updated = await directory.update(a.id, UserPatch({"sync_enabled": False}))
        assert updated.sync_enabled is False
        got = await directory.get(a.id)
        assert got is not None and got.sync_enabled is False
    else:
        with pytest.raises(DirectoryError) as e:
            await directory.update(a.id, UserPatch({"sync_enabled": False}))
        assert e.value.code == "directory_unsupported"


# --- deactivate, delete ---------------------------------------------------------------------


async def test_deactivate_keeps_the_user_inactive(directory: Directory) -> None:
    a = await directory.create(alice())
    deactivated = await directory.deactivate(a.id)
    assert deactivated.active is False
    assert deactivated.email == a.email and deactivated.phones == a.phones
    got = await directory.get(a.id)
    assert got is not None and got.active is False
    assert [u.id for u in await directory.find_by_phone("+46701234567")] == [a.id]


async def test_a_deleted_user_is_gone_from_get_list_and_lookups(directory: Directory) -> None:
    a = await directory.create(alice())
    await directory.delete(a.id)
    assert await directory.get(a.id) is None
    assert await directory.list_users() == []
    assert await directory.find_by_phone("+46701234567") == []
    assert await directory.find_by_email("alice@contoso.example") == []
    assert await directory.find_by_external_id("entra-alice") is None


async def test_update_and_delete_of_a_deleted_user_raise_not_found(directory: Directory) -> None:
    a = await directory.create(alice())
    await directory.delete(a.id)
    with pytest.raises(DirectoryNotFound):
        await directory.update(a.id, UserPatch({"display_name": "x"}))
    with pytest.raises(DirectoryNotFound):
        await directory.deactivate(a.id)
    with pytest.raises(DirectoryNotFound):
        await directory.delete(a.id)


async def test_a_deleted_users_values_can_be_used_again(directory: Directory) -> None:
    a = await directory.create(alice())
    await directory.delete(a.id)
    again = await directory.create(alice())
    assert again.id != a.id
    assert [u.id for u in await directory.find_by_email("alice@contoso.example")] == [again.id]


# --- uniqueness -----------------------------------------------------------------------------


async def test_creating_a_user_with_a_taken_email_conflicts(directory: Directory) -> None:
    await directory.create(alice())
    with pytest.raises(DirectoryConflict):
        await directory.create(NewDirectoryUser(email="ALICE@contoso.example"))
    assert len(await directory.list_users()) == 1


async def test_updating_a_user_to_a_taken_email_conflicts(directory: Directory) -> None:
    await directory.create(alice())
    b = await directory.create(NewDirectoryUser(email="bob@contoso.example"))
    with pytest.raises(DirectoryConflict):
        await directory.update(b.id, UserPatch({"email": "alice@contoso.example"}))
    got = await directory.get(b.id)
    assert got is not None and got.email == "bob@contoso.example"


async def test_creating_a_user_with_a_taken_entra_id_conflicts(directory: Directory) -> None:
    await directory.create(alice())
    with pytest.raises(DirectoryConflict):
        await directory.create(
            NewDirectoryUser(email="bob@contoso.example", entra_id="entra-alice")
        )


async def test_users_may_share_a_phone_number(directory: Directory) -> None:
    await directory.create(alice())
    b = await directory.create(
        NewDirectoryUser(email="bob@contoso.example", phones=("+46701234567",))
    )
    assert b.phones == ("+46701234567",)


# --- built-in directory: atomicity and seed --------------------------------------------------


@pytest.fixture(params=["fakeredis", pytest.param("redis", marks=pytest.mark.redis)])
def builtin(request: pytest.FixtureRequest, keys: Keys) -> BuiltinDirectory:
    name = "fake_redis" if request.param == "fakeredis" else "real_redis"
    return BuiltinDirectory(request.getfixturevalue(name), keys)


async def _index_dump(redis: aioredis.Redis, keys: Keys) -> dict[str, dict[bytes, bytes]]:
    return {k: await redis.hgetall(keys.dir_index("main", k)) for k in ("phone", "email", "entra")}


async def test_concurrent_creates_with_one_email_let_exactly_one_win(
    builtin: BuiltinDirectory,
) -> None:
    results = await asyncio.gather(
        *(builtin.create(NewDirectoryUser(email="same@contoso.example")) for _ in range(10)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, DirectoryConflict) for r in results if isinstance(r, BaseException))
    assert [u.id for u in await builtin.find_by_email("same@contoso.example")] == [winners[0].id]


async def test_indexes_agree_with_users_after_concurrent_writes(
    builtin: BuiltinDirectory, keys: Keys
) -> None:
    users = await asyncio.gather(
        *(
            builtin.create(NewDirectoryUser(email=f"u{i}@c.example", phones=("+4611",)))
            for i in range(10)
        )
    )
    await asyncio.gather(
        *(builtin.update(u.id, UserPatch({"phones": [f"+462{i}"]})) for i, u in enumerate(users)),
        *(builtin.delete(u.id) for u in users[:3]),
    )
    assert await builtin.find_by_phone("+4611") == []
    redis = builtin._redis
    ix = await _index_dump(redis, keys)
    assert set(ix["phone"]) == {f"+462{i}".encode() for i in range(3, 10)}
    assert len(ix["email"]) == 7
    assert len(await builtin.list_users()) == 7


async def test_import_seed_loads_an_empty_directory_once(
    builtin: BuiltinDirectory, keys: Keys
) -> None:
    data = {
        "users": [
            {
                "id": "7",
                "first_name": "Ann",
                "email": "Ann@c.example",
                "phones": ["+4611"],
                "tags": ["x"],
                "entra_id": "e-ann",
                "sync_enabled": False,
            },
            {"id": "ext-1", "email": "bo@c.example", "phones": ["+4611"], "sync_enabled": True},
        ],
        "ignored": ["e-zed"],
    }
    assert await builtin.import_seed(data) == 2
    assert await builtin.import_seed(data) == 0
    ann = await builtin.find_by_external_id("e-ann")
    assert ann is not None and ann.id == "7" and ann.sync_enabled is False
    assert [u.id for u in await builtin.find_by_phone("+4611")] == ["7", "ext-1"]
    assert [u.id for u in await builtin.find_by_email("ann@c.example")] == ["7"]
    created = await builtin.create(NewDirectoryUser(email="new@c.example"))
    assert created.id not in {"7", "ext-1"}
    assert len(await builtin.list_users()) == 3


async def test_two_instances_on_one_redis_list_each_others_writes(
    builtin: BuiltinDirectory, keys: Keys
) -> None:
    other = BuiltinDirectory(builtin._redis, keys)
    a = await builtin.create(NewDirectoryUser(email="a@c.example"))
    assert [u.id for u in await other.list_users()] == [a.id]  # other's mirror is filled
    assert [u.id for u in await builtin.list_users()] == [a.id]
    b = await other.create(NewDirectoryUser(email="b@c.example"))
    await other.update(a.id, UserPatch({"display_name": "Ann"}))
    assert await builtin.list_users() == await other.list_users()
    assert [(u.id, u.display_name) for u in await builtin.list_users()] == [
        (a.id, "Ann"),
        (b.id, None),
    ]
    await builtin.delete(b.id)
    await builtin.update(a.id, UserPatch({"tags": ["x"]}))
    assert [(u.id, u.tags) for u in await other.list_users()] == [(a.id, ("x",))]
    assert await builtin.list_users() == await other.list_users()


async def test_a_listing_follows_the_instances_own_writes_in_id_order(
    builtin: BuiltinDirectory,
) -> None:
    made = [await builtin.create(NewDirectoryUser(email=f"u{i}@c.example")) for i in range(3)]
    assert [u.id for u in await builtin.list_users()] == [u.id for u in made]
    await builtin.update(made[0].id, UserPatch({"email": "first@c.example"}))
    await builtin.delete(made[1].id)
    late = await builtin.create(NewDirectoryUser(email="late@c.example"))
    listed = await builtin.list_users()
    assert [u.id for u in listed] == [made[0].id, made[2].id, late.id]
    assert listed[0].email == "first@c.example"
    fresh = BuiltinDirectory(builtin._redis, builtin._keys)
    assert await fresh.list_users() == listed


async def test_a_listing_after_the_keys_were_deleted_and_seeded_again_is_the_new_seed(
    builtin: BuiltinDirectory, keys: Keys
) -> None:
    assert await builtin.import_seed({"users": [{"id": "1", "email": "old@c.example"}]}) == 1
    assert [u.email for u in await builtin.list_users()] == ["old@c.example"]
    redis = builtin._redis
    async for k in redis.scan_iter(match=keys.prefix + "dir:*"):
        await redis.delete(k)
    other = BuiltinDirectory(redis, keys)
    assert await other.import_seed({"users": [{"id": "1", "email": "new@c.example"}]}) == 1
    assert [u.email for u in await builtin.list_users()] == ["new@c.example"]


async def test_import_seed_reads_a_directory_file(builtin: BuiltinDirectory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "directory.json"
    path.write_text('{"users": [{"id": "1", "email": "a@c.example"}], "ignored": []}')
    assert await builtin.import_seed(path) == 1
    assert (await builtin.list_users())[0].email == "a@c.example"


@pytest.mark.redis
@pytest.mark.slow
async def test_list_users_reads_100000_users(real_redis: aioredis.Redis, keys: Keys) -> None:
    d = BuiltinDirectory(real_redis, keys)
    users = [
        {"id": str(i), "email": f"u{i}@c.example", "phones": [f"+4670{i:07d}"]}
        for i in range(1, 100_001)
    ]
    assert await d.import_seed({"users": users}) == 100_000
    listed = await d.list_users()
    assert len(listed) == 100_000
    assert listed[0].id == "1" and listed[-1].id == "100000"
    assert [u.id for u in await d.find_by_phone("+46700054321")] == ["54321"]


# --- SCIM specifics against the real server --------------------------------------------------


async def test_scim_with_a_wrong_token_raises_auth_error(
    scim_server: ScimServer, http: httpx.AsyncClient
) -> None:
    d = ScimDirectory(scim_server.base_url, SecretStr("wrong"), http=http)
    with pytest.raises(DirectoryAuthError):
        await d.list_users()


@pytest.mark.parametrize("server", ["scim_server", "scim_server_minimal"])
async def test_scim_update_keeps_attributes_the_adapter_does_not_map(
    server: str, request: pytest.FixtureRequest, http: httpx.AsyncClient
) -> None:
    s: ScimServer = request.getfixturevalue(server)
    d = _scim(s, http)
    a = await d.create(alice())
    headers = {"Authorization": f"Bearer {s.token}"}
    url = f"{s.base_url}/Users/{a.id}"
    current = (await http.get(url, headers=headers)).json()
    current["title"] = "Queen"
    current.pop("meta")
    assert (await http.put(url, json=current, headers=headers)).status_code == 200
    await d.update(a.id, UserPatch({"display_name": "Alice L."}))
    after = (await http.get(url, headers=headers)).json()
    assert after["title"] == "Queen"
    assert after["displayName"] == "Alice L."


@pytest.mark.parametrize("server", ["scim_server", "scim_server_minimal"])
async def test_scim_username_follows_the_email_it_was_made_from(
    server: str, request: pytest.FixtureRequest, http: httpx.AsyncClient
) -> None:
    s: ScimServer = request.getfixturevalue(server)
    d = _scim(s, http)
    a = await d.create(alice())
    await d.update(a.id, UserPatch({"email": "a.l@contoso.example"}))
    headers = {"Authorization": f"Bearer {s.token}"}
    after = (await http.get(f"{s.base_url}/Users/{a.id}", headers=headers)).json()
    assert after["userName"] == "a.l@contoso.example"
    # the old e-mail is free again
    b = await d.create(NewDirectoryUser(email="alice@contoso.example"))
    assert b.email == "alice@contoso.example"


async def test_scim_username_set_by_someone_else_is_left_alone(
    scim_server: ScimServer, http: httpx.AsyncClient
) -> None:
    headers = {"Authorization": f"Bearer {scim_server.token}"}
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "jdoe",
        "emails": [{"value": "jd@contoso.example", "primary": True}],
    }
    created = (await http.post(f"{scim_server.base_url}/Users", json=body, headers=headers)).json()
    d = _scim(scim_server, http)
    updated = await d.update(created["id"], UserPatch({"email": "john@contoso.example"}))
    assert updated.email == "john@contoso.example"
    after = (
        await http.get(f"{scim_server.base_url}/Users/{created['id']}", headers=headers)
    ).json()
    assert after["userName"] == "jdoe"
