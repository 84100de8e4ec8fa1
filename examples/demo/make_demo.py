"""Generates the demo tenant and directory (run once; the JSON files are committed).

python examples/demo/make_demo.py  ->  examples/demo/tenant.json, examples/demo/directory.json
Every kind of proposal appears: phone matches in mixed formats, an e-mail match, a number shared
by two Entra users (conflict), changed names (updates), a deleted and a disabled user
(removals), new users, and users with no number (out of scope).
"""

from __future__ import annotations

import json
from pathlib import Path

FIRST = [
    "Anna",
    "Erik",
    "Maria",
    "Lars",
    "Karin",
    "Anders",
    "Eva",
    "Johan",
    "Sara",
    "Per",
    "Lena",
    "Nils",
    "Emma",
    "Olof",
    "Ida",
    "Gustav",
    "Elin",
    "Karl",
    "Frida",
    "Oskar",
    "Linnea",
    "Axel",
    "Maja",
    "Hugo",
    "Alva",
    "Leo",
    "Ella",
    "Viktor",
    "Wilma",
    "Emil",
    "Klara",
    "Isak",
    "Ebba",
    "Filip",
    "Tilda",
    "Adam",
    "Saga",
    "Albin",
    "Elsa",
    "Melvin",
    "Astrid",
    "Ludvig",
    "Greta",
    "Sixten",
    "Stina",
    "Arvid",
    "Tove",
    "Malte",
    "Siri",
    "Ture",
]
LAST = [
    "Andersson",
    "Johansson",
    "Karlsson",
    "Nilsson",
    "Eriksson",
    "Larsson",
    "Olsson",
    "Persson",
    "Svensson",
    "Gustafsson",
    "Pettersson",
    "Jonsson",
    "Jansson",
    "Hansson",
    "Bengtsson",
    "Jönsson",
    "Lindberg",
    "Jakobsson",
    "Magnusson",
    "Olofsson",
]
DEPTS = ["Sales", "Support", "Finance", "IT", "Reception"]
FORMATS = [
    "070-{a}{b} {c} {d}",
    "+46 70 {a}{b} {c} {d}",
    "0046 70{a}{b}{c}{d}",
    "(070) {a}{b}{c}{d}",
]


def main() -> None:
    users, directory = [], []
    for i in range(50):
        first, last = FIRST[i], LAST[i % len(LAST)]
        uid = f"00000000-0000-4000-8000-0000000000{i:02d}"
        a, b, c, d = f"{i:02d}"[0], f"{i:02d}"[1], f"{100 + i}", f"{10 + i}"
        number = f"+4670{a}{b}{c}{d}"
        mobile = FORMATS[i % 4].format(a=a, b=b, c=c, d=d)
        mail = f"{first.lower()}.{last.lower()}@contoso.example".replace("ö", "o")
        u = {
            "id": uid,
            "accountEnabled": True,
            "givenName": first,
            "surname": last,
            "displayName": f"{first} {last}",
            "mail": mail,
            "userPrincipalName": mail,
            "mobilePhone": mobile,
            "businessPhones": [],
            "department": DEPTS[i % 5],
            "jobTitle": "Agent",
        }
        dir_user = {
            "id": str(1000 + i),
            "first_name": first,
            "last_name": last,
            "display_name": f"{first} {last}",
            "email": mail,
            "phones": [number],
            "tags": [],
        }
        if i < 20:  # linked and in step
            dir_user["entra_id"] = uid
            directory.append(dir_user)
        elif i < 25:  # linked; the surname changed in Entra since
            dir_user["entra_id"] = uid
            u["surname"] = last + "-Berg"
            u["displayName"] = f"{first} {last}-Berg"
            directory.append(dir_user)
        elif i == 25:  # linked, deleted in Entra
            dir_user["entra_id"] = uid
            directory.append(dir_user)
            continue
        elif i == 26:  # linked, disabled in Entra
            dir_user["entra_id"] = uid
            u["accountEnabled"] = False
            directory.append(dir_user)
        elif i < 35:  # in the phone system, not linked: matches by phone (mixed formats)
            directory.append(dir_user)
        elif i == 35:  # matches by e-mail only (the phone system has another number)
            dir_user["phones"] = ["+46812345600"]
            dir_user["email"] = mail.upper()
            directory.append(dir_user)
        elif i in (36, 37):  # both have the reception number: a conflict
            u["mobilePhone"] = None
            u["businessPhones"] = ["08-555 000 99" if i == 36 else "+46 8 555 000 99"]
            if i == 36:
                directory.append(
                    {
                        "id": "1999",
                        "first_name": "Reception",
                        "last_name": "",
                        "display_name": "Reception",
                        "email": "reception@contoso.example",
                        "phones": ["+46855500099"],
                        "tags": ["switchboard"],
                    }
                )
        elif i >= 47:  # no number in Entra: out of scope by default
            u["mobilePhone"] = None
        # 38..46: only in Entra -> new
        users.append(u)
    users.append(
        {
            "id": "00000000-0000-4000-8000-0000000000ff",
            "accountEnabled": True,
            "givenName": "**Mallory**",
            "surname": "[click](http://evil.example)",
            "displayName": "**Mallory** <script>alert(1)</script> [click](http://evil.example)",
            "mail": "mallory@contoso.example",
            "userPrincipalName": "mallory@contoso.example",
            "mobilePhone": "+46 73 999 00 00",
            "businessPhones": [],
        }
    )
    groups = [
        {
            "id": "11111111-0000-4000-8000-000000000001",
            "displayName": "telephony",
            "members": [u["id"] for u in users[:30]] + ["11111111-0000-4000-8000-000000000002"],
        },
        {
            "id": "11111111-0000-4000-8000-000000000002",
            "displayName": "reception",
            "members": [u["id"] for u in users[30:40]],
        },
    ]
    here = Path(__file__).parent
    (here / "tenant.json").write_text(
        json.dumps({"users": users, "groups": groups}, indent=1, ensure_ascii=False) + "\n"
    )
    (here / "directory.json").write_text(
        json.dumps({"users": directory, "ignored": []}, indent=1, ensure_ascii=False) + "\n"
    )


if __name__ == "__main__":
    main()
