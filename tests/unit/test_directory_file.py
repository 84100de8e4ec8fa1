"""The directory file parser (DESIGN §5): typed users, and one-line errors naming the file and
the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.directories.builtin import load_directory_file
from sync.errors import InputError


def write(tmp_path: Path, data: Any) -> Path:
    p = tmp_path / "dir.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return p


def test_a_directory_file_is_read_into_users_and_ignored_ids(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        {
            "users": [
                {
                    "id": "1",
                    "first_name": "Ann",
                    "last_name": "Lee",
                    "display_name": "Ann Lee",
                    "email": "ann@c.example",
                    "phones": ["+46701234567"],
                    "tags": ["sales"],
                    "entra_id": "e-ann",
                    "sync_enabled": False,
                },
                {"id": 2, "email": "bo@c.example", "phones": [], "sync_enabled": True},
            ],
            "ignored": ["e-zed"],
        },
    )
    users, ignored = load_directory_file(p)
    assert ignored == ["e-zed"]
    assert [u.id for u in users] == ["1", "2"]
    assert users[0].phones == ("+46701234567",) and users[0].tags == ("sales",)
    assert users[0].entra_id == "e-ann" and users[0].sync_enabled is False
    assert users[1].entra_id is None and users[1].sync_enabled is True


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"users": [{"id": "1"}, {"id": "2"}, {"id": "3"}, {"id": "4", "phones": "+46"}]},
            "dir.json: users[3].phones: expected a list of strings",
        ),
        ({"users": [{"id": "1", "phone": ["+46"]}]}, "dir.json: users[0]: unknown field(s): phone"),
        ({"users": [{"email": "a@b"}]}, "dir.json: users[0].id: expected a non-empty string"),
        ({"users": [{"id": "1", "email": 5}]}, "dir.json: users[0].email: expected a string"),
        (
            {"users": [{"id": "1", "sync_enabled": "yes"}]},
            "dir.json: users[0].sync_enabled: expected true or false",
        ),
        (
            {"users": [{"id": "1"}, {"id": "1"}]},
            "dir.json: users[1].id: '1' is also used by users[0]",
        ),
        (
            {"users": [{"id": "1", "email": "A@b"}, {"id": "2", "email": "a@B"}]},
            "dir.json: users[1].email: 'a@b' is also used by users[0]",
        ),
        (
            {"users": [{"id": "1", "entra_id": "e"}, {"id": "2", "entra_id": "e"}]},
            "dir.json: users[1].entra_id: 'e' is also used by users[0]",
        ),
        ({"users": {}}, "dir.json: users: expected a list"),
        ({"users": [], "ignored": [1]}, "dir.json: ignored: expected a list of strings"),
        ({"users": [], "groups": []}, "dir.json: unknown field(s): groups"),
        ([], "dir.json: expected a JSON object with 'users'"),
        ({"users": ["x"]}, "dir.json: users[0]: expected an object"),
    ],
)
def test_a_bad_directory_file_names_the_file_and_field(
    tmp_path: Path, data: Any, message: str
) -> None:
    with pytest.raises(InputError) as e:
        load_directory_file(write(tmp_path, data))
    assert str(e.value) == str(tmp_path / message)


def test_a_file_that_is_not_json_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"dir.json: not valid JSON \(line 2, column 2\)"):
        load_directory_file(write(tmp_path, '{"users": []\n,,'))


def test_a_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_directory_file(tmp_path / "nope.json")


def test_an_empty_file_has_no_users(tmp_path: Path) -> None:
    assert load_directory_file(write(tmp_path, {})) == ([], [])
