"""Mastodon: answers that validate against the official OpenAPI schema, HTML to text, mentions, post replies."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from fakes.mastodon import OUR_ACCT, FakeMastodon
from listener.sources.base import Watch
from listener.sources.mastodon import status_text

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = Path(
    os.environ.get("LISTENER_MASTODON_OPENAPI", ROOT.parent / "shared" / "schemas" / "mastodon" / "openapi.json")
)


@pytest.fixture
async def masto() -> AsyncIterator[FakeMastodon]:
    async with FakeMastodon() as fake:
        yield fake


ACCOUNT = Watch(id="metropolice", kind="account", targets={"mastodon": OUR_ACCT})


def validator(ref: str) -> Any:
    if not SCHEMA.is_file():
        pytest.skip(f"Mastodon's OpenAPI schema is not at {SCHEMA} (set LISTENER_MASTODON_OPENAPI to check the fake)")
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = json.loads(SCHEMA.read_text(encoding="utf-8"))
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:mastodon", resource)
    return Draft202012Validator({"$ref": f"urn:mastodon{ref}"}, registry=registry)


async def test_the_fake_answers_as_the_official_schema_says(masto, session):
    status = validator("#/components/schemas/Status")
    context = validator("#/components/schemas/Context")
    notification = validator("#/components/schemas/Notification")
    account = validator("#/components/schemas/Account")
    root = masto.new_status("<p>Our lip-sync video</p>", acct=OUR_ACCT)
    masto.new_status(f"<p>@{OUR_ACCT} cringe</p>", reply_to=root.id, mentions_us=True)
    masto.publish(2)
    source = masto.source(session)
    await source.fetch(masto.watch(), "MetroPolice", None)
    await source.fetch(ACCOUNT, OUR_ACCT, None)
    post = Watch(id="lipsync", kind="post", targets={"mastodon": str(root.id)})
    await source.fetch(post, str(root.id), None)
    checked = 0
    for path, body in masto.served:
        if path.startswith("/api/v1/timelines/tag/"):
            for item in body:
                status.validate(item)
                checked += 1
        elif path == "/api/v1/notifications":
            for item in body:
                notification.validate(item)
                checked += 1
        elif path.endswith("/context"):
            context.validate(body)
            checked += 1
        elif path == "/api/v1/accounts/verify_credentials":
            account.validate(body)
            checked += 1
    assert checked >= 5


def test_html_becomes_plain_text_with_the_content_warning_first():
    text = status_text(
        {
            "content": '<p>Response times from <a href="https://x/tags/MetroPolice" class="mention hashtag">'
            "#<span>MetroPolice</span></a> keep getting worse :angry_cat:</p>"
            "<p>Second&nbsp;para &amp; more<br>line</p>",
            "spoiler_text": "police :blobcop:",
        }
    )
    assert text == "police\n\nResponse times from #MetroPolice keep getting worse\n\nSecond\xa0para & more\nline"


async def test_mentions_of_our_account_come_from_notifications_paging_forward(masto, session):
    source = masto.source(session)
    masto.new_status(f"<p>@{OUR_ACCT} thank you</p>", mentions_us=True)
    first = await source.fetch(ACCOUNT, OUR_ACCT, None)
    assert [m.text for m in first.mentions] == [f"@{OUR_ACCT} thank you"]
    backlog = [masto.new_status(f"<p>@{OUR_ACCT} number {i}</p>", mentions_us=True) for i in range(100)]
    second = await source.fetch(ACCOUNT, OUR_ACCT, first.next_cursor)
    assert sorted(m.id for m in second.mentions) == sorted(s.json()["uri"] for s in backlog)
    calls = masto.api_requests("/api/v1/notifications")
    assert all(
        c.query.get("types[]") == ["mention"] and c.headers["Authorization"].startswith("Bearer ") for c in calls
    )
    # Paged forward with min_id (no gaps), never since_id.
    assert all("since_id" not in c.query for c in calls) and any("min_id" in c.query for c in calls)


async def test_someone_else_s_account_is_read_from_its_public_statuses(masto, session):
    masto.new_status("<p>Officer Daniels here</p>", acct=OUR_ACCT)
    source = masto.source(session, access_token=None)
    batch = await source.fetch(ACCOUNT, f"@{OUR_ACCT}", None)
    assert [m.text for m in batch.mentions] == ["Officer Daniels here"]
    assert not masto.api_requests("/api/v1/notifications")


async def test_post_watch_reads_replies_from_the_context_once_each(masto, session):
    root = masto.new_status("<p>Our lip-sync video</p>", acct=OUR_ACCT)
    reply = masto.new_status("<p>cringe</p>", reply_to=root.id)
    watch = Watch(id="lipsync", kind="post", targets={"mastodon": f"https://mastodon.example/@{OUR_ACCT}/{root.id}"})
    target = watch.targets["mastodon"]
    source = masto.source(session)
    first = await source.fetch(watch, target, None)
    assert [m.id for m in first.mentions] == [reply.json()["uri"]]
    assert first.mentions[0].thread == target
    nested = masto.new_status("<p>agreed, take it down</p>", reply_to=reply.id)
    second = await source.fetch(watch, target, first.next_cursor)
    assert [m.id for m in second.mentions] == [nested.json()["uri"]]


async def test_an_unknown_hashtag_is_a_clear_error(masto, session):
    from listener.errors import SourceError

    watch = Watch(id="nope", kind="hashtag", targets={"mastodon": "NoSuchTag"})
    with pytest.raises(SourceError, match="404.*Record not found"):
        await masto.source(session).fetch(watch, "NoSuchTag", None)
