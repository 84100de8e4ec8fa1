"""The digest mail (pure): its link to the Teams channel, its escaping, what counts as news, and
the [notify] settings as the config file and the settings card give them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sync.config import Config, config_from_dict
from sync.errors import AuthError, ConfigError, GraphThrottled, InputError, SyncError
from sync.mail.digest import MAX_ITEMS, NewItem, RunNews, channel_link, compose
from sync.mail.notifier import news_of
from sync.models import Blocked, Kind
from sync.service.records import RunResult
from sync.service.settings_form import form_to_table, merge_config

AT = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
REF: dict[str, Any] = {
    "conversation": {
        "id": "19:abc@thread.tacv2;messageid=1",
        "conversationType": "channel",
        "tenantId": "tid-1",
        "name": "Phone admins",
    },
    "teamId": "19:team@thread.tacv2",
    "aadGroupId": "gid-1",
}


def run(
    status: str = "ok", error: SyncError | None = None, blocked: tuple[Blocked, ...] = ()
) -> RunResult:
    return RunResult(
        "contoso",
        "main",
        status,
        "scheduled",
        AT,
        AT,
        error=error,
        blocked=blocked,  # type: ignore[arg-type]
    )


def test_channel_link_is_the_documented_deep_link_with_group_and_tenant() -> None:
    link = channel_link(REF)
    assert link is not None and link.name == "Phone admins"
    assert link.url == (
        "https://teams.microsoft.com/l/channel/19%3Aabc%40thread.tacv2/Phone%20admins"
        "?groupId=gid-1&tenantId=tid-1"
    )


def test_the_general_channel_is_named_general_when_teams_sent_no_name() -> None:
    ref = {**REF, "conversation": {**REF["conversation"], "id": "19:team@thread.tacv2"}}
    del ref["conversation"]["name"]
    link = channel_link(ref)
    assert link is not None and "/General?" in link.url


def test_without_the_team_group_id_there_is_no_link_and_the_mail_says_where_to_go() -> None:
    ref = {k: v for k, v in REF.items() if k != "aadGroupId"}
    assert channel_link(ref) is None
    news = RunNews(items=(NewItem("contoso", "main", Kind.NEW, "Anna", ""),))
    mail = compose(news, sender="bot@contoso.com", to=["sd@contoso.com"], link=None, at=AT)
    assert "https://" not in mail.text
    assert "Open the Teams channel where Entra Sync posts and type 'pending'" in mail.text


def test_a_script_name_is_escaped_in_html_and_kept_on_one_line_in_text() -> None:
    name = "<script>alert(1)</script>\r\nSubject: hi"
    news = RunNews(items=(NewItem("contoso", "main", Kind.NEW, name, "no match"),))
    mail = compose(news, sender="bot@contoso.com", to=["sd@contoso.com"], link=None, at=AT)
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Subject: hi" in mail.html
    assert "New Entra user: <script>alert(1)</script> Subject: hi \u2014 no match" in mail.text
    assert mail.subject == "Entra Sync: 1 new pending item"


def test_more_items_than_a_mail_lists_are_counted() -> None:
    items = tuple(NewItem("c", "d", Kind.UPDATE, f"User {i}", "") for i in range(MAX_ITEMS + 7))
    mail = compose(RunNews(items=items), sender="b@c.se", to=["a@c.se"], link=None, at=AT)
    assert f"User {MAX_ITEMS - 1}" in mail.text and f"User {MAX_ITEMS}" not in mail.text
    assert "and 7 more" in mail.text
    assert mail.subject == f"Entra Sync: {MAX_ITEMS + 7} new pending items"


def test_the_same_sign_in_error_in_the_next_run_is_no_news() -> None:
    expired = AuthError("the client secret expired", aadsts=7000222)
    news, told = news_of([run("failed", expired)], {})
    assert [(p.kind, p.code) for p in news.problems] == [("secret_expired", "AADSTS7000222")]
    again, _ = news_of([run("failed", expired)], told)
    assert not again


def test_a_run_that_ends_well_clears_the_error_so_the_next_failure_is_told() -> None:
    lost = AuthError("no token", aadsts=7000215)
    _, told = news_of([run("failed", lost)], {})
    _, cleared = news_of([run("ok")], told)
    news, _ = news_of([run("failed", lost)], {**told, **cleared})
    assert [p.kind for p in news.problems] == ["connection"]


def test_a_throttled_run_needs_no_human() -> None:
    news, _ = news_of([run("failed", GraphThrottled("429"))], {})
    assert not news


def test_the_guard_is_told_when_its_held_back_set_changes_not_every_run() -> None:
    held = (Blocked("more than 10 removals", 12),)
    news, told = news_of([run(blocked=held)], {})
    assert [p.kind for p in news.problems] == ["guard"] and "12 held back" in news.problems[
        0
    ].message
    same, _ = news_of([run(blocked=held)], told)
    more, _ = news_of([run(blocked=(Blocked("more than 10 removals", 15),))], told)
    assert not same and [p.kind for p in more.problems] == ["guard"]


def test_notify_email_refuses_a_malformed_address_and_says_which() -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict({"notify": {"email": ["ok@contoso.com", "servicedesk contoso.com"]}})
    assert "notify.email" in e.value.message and "'servicedesk contoso.com'" in e.value.message


def test_notify_email_needs_the_sender_mailbox() -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict({"notify": {"email": ["sd@contoso.com"]}})
    assert "from_mailbox" in e.value.message


def test_smtp_without_starttls_refuses_to_send_a_password_in_clear_text() -> None:
    mail = {"transport": "smtp", "host": "smtp.contoso.com", "from_mailbox": "b@contoso.com"}
    with pytest.raises(ConfigError) as e:
        config_from_dict({"notify": {"mail": {**mail, "starttls": False, "username": "b"}}})
    assert "clear text" in e.value.message


def test_notify_mail_tenant_must_name_a_configured_tenant() -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict(
            {
                "tenants": [{"name": "contoso", "simulate": "t.json"}],
                "notify": {"mail": {"tenant": "fabrikam"}},
            }
        )
    assert "unknown tenant 'fabrikam'" in e.value.message


def test_the_settings_card_sets_recipients_and_keeps_the_transport_of_the_file() -> None:
    base = config_from_dict(
        {"notify": {"mail": {"transport": "smtp", "host": "smtp.c.se", "from_mailbox": "b@c.se"}}}
    )
    table, errors = form_to_table({"notify.email": "sd@c.se, Ops@C.se, ops@c.se"})
    new = merge_config(base, table)
    assert errors == {} and isinstance(new, Config)
    assert new.notify.email == ("sd@c.se", "Ops@C.se")  # the same address once
    assert new.notify.mail == base.notify.mail


def test_the_settings_card_refuses_a_bad_recipient_naming_the_field() -> None:
    base = config_from_dict({"notify": {"mail": {"from_mailbox": "b@c.se"}}})
    table, _ = form_to_table({"notify.email": "sd@c.se, not-an-address"})
    with pytest.raises(InputError) as e:
        merge_config(base, table)
    assert "notify.email" in e.value.message and "'not-an-address'" in e.value.message
