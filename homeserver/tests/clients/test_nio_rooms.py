"""Rooms and messaging driven by matrix-nio against the running `hearth` binary: a DM, a group
of three with an admin who renames it and kicks someone, replies, edits, reactions, redaction,
and paging through hundreds of messages. nio keeps its own room model from /sync, so these
checks are what a nio-based bot or client would see."""

import asyncio

from nio import RoomPreset, RoomVisibility
from nio.events.room_events import RedactedEvent, RoomMessageText
from nio.responses import (
    JoinedMembersResponse,
    JoinResponse,
    RoomCreateResponse,
    RoomKickResponse,
    RoomMessagesResponse,
    RoomPutStateError,
    RoomPutStateResponse,
    RoomRedactResponse,
    RoomSendError,
    RoomSendResponse,
)

from nio_helpers import close_all, registered, sync_until


def texts(response, room_id):
    room = response.rooms.join.get(room_id)
    return [e for e in room.timeline.events if isinstance(e, RoomMessageText)] if room else []


async def test_a_direct_chat_between_two_nio_users(server):
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    try:
        created = await alice.room_create(is_direct=True, preset=RoomPreset.trusted_private_chat, invite=["@bob:localhost"])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id

        await sync_until(bob, lambda r: room_id in r.rooms.invite)
        assert room_id in bob.invited_rooms
        joined = await bob.join(room_id)
        assert isinstance(joined, JoinResponse), joined

        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "Hi Bob!"})
        assert isinstance(sent, RoomSendResponse), sent
        response = await sync_until(bob, lambda r: any(e.body == "Hi Bob!" for e in texts(r, room_id)))
        message = next(e for e in texts(response, room_id) if e.body == "Hi Bob!")
        assert message.sender == "@alice:localhost" and message.event_id == sent.event_id

        reply = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "Hi Alice", "m.relates_to": {"m.in_reply_to": {"event_id": sent.event_id}}})
        assert isinstance(reply, RoomSendResponse)
        response = await sync_until(alice, lambda r: any(e.body == "Hi Alice" for e in texts(r, room_id)))
        got = next(e for e in texts(response, room_id) if e.body == "Hi Alice")
        assert got.source["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == sent.event_id

        room = alice.rooms[room_id]
        assert set(room.users) == {"@alice:localhost", "@bob:localhost"}
        members = await bob.joined_members(room_id)
        assert isinstance(members, JoinedMembersResponse) and len(members.members) == 2
    finally:
        await close_all(alice, bob)


async def test_a_group_with_an_admin_who_renames_and_kicks(server):
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    carol = await registered(server, "carol")
    try:
        created = await alice.room_create(name="Project", topic="Planning", preset=RoomPreset.private_chat,
                                          invite=["@bob:localhost", "@carol:localhost"])
        room_id = created.room_id
        for member in (bob, carol):
            await sync_until(member, lambda r: room_id in r.rooms.invite)
            assert isinstance(await member.join(room_id), JoinResponse)

        refused = await bob.room_put_state(room_id, "m.room.name", {"name": "Bob's project"})
        assert isinstance(refused, RoomPutStateError) and refused.status_code == "M_FORBIDDEN"
        renamed = await alice.room_put_state(room_id, "m.room.name", {"name": "Project X"})
        assert isinstance(renamed, RoomPutStateResponse), renamed
        await sync_until(carol, lambda r: carol.rooms[room_id].name == "Project X" if room_id in carol.rooms else False)
        assert carol.rooms[room_id].topic == "Planning"

        kicked = await alice.room_kick(room_id, "@carol:localhost", reason="wrong group")
        assert isinstance(kicked, RoomKickResponse), kicked
        await sync_until(carol, lambda r: room_id in r.rooms.leave)
        blocked = await carol.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "let me in"})
        assert isinstance(blocked, RoomSendError) and blocked.status_code == "M_FORBIDDEN"
        await sync_until(bob, lambda r: room_id in bob.rooms and "@carol:localhost" not in bob.rooms[room_id].users)
    finally:
        await close_all(alice, bob, carol)


async def test_edits_reactions_and_redaction_reach_every_member(server):
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    try:
        room_id = (await alice.room_create(preset=RoomPreset.public_chat, visibility=RoomVisibility.private)).room_id
        assert isinstance(await bob.join(room_id), JoinResponse)
        original = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "teh plan"})
        edit = await alice.room_send(room_id, "m.room.message", {
            "msgtype": "m.text", "body": "* the plan",
            "m.new_content": {"msgtype": "m.text", "body": "the plan"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original.event_id},
        })
        reaction = await bob.room_send(room_id, "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": original.event_id, "key": "👍"}})
        assert isinstance(edit, RoomSendResponse) and isinstance(reaction, RoomSendResponse)

        response = await sync_until(bob, lambda r: any(e.event_id == edit.event_id for e in texts(r, room_id)))
        edited = next(e for e in texts(response, room_id) if e.event_id == edit.event_id)
        assert edited.source["content"]["m.relates_to"] == {"rel_type": "m.replace", "event_id": original.event_id}

        redacted = await alice.room_redact(room_id, original.event_id, reason="outdated")
        assert isinstance(redacted, RoomRedactResponse), redacted
        history = await bob.room_messages(room_id, limit=50)
        assert isinstance(history, RoomMessagesResponse), history
        gone = next(e for e in history.chunk if e.event_id == original.event_id)
        assert isinstance(gone, RedactedEvent), gone
        assert gone.redacter == "@alice:localhost" and gone.reason == "outdated"
    finally:
        await close_all(alice, bob)


async def test_paging_through_hundreds_of_messages(server):
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    try:
        room_id = (await alice.room_create(preset=RoomPreset.public_chat)).room_id
        assert isinstance(await bob.join(room_id), JoinResponse)
        total = 300
        for start in range(0, total, 50):
            results = await asyncio.gather(*[
                alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"n{i}"}, tx_id=f"t{i}")
                for i in range(start, start + 50)
            ])
            assert all(isinstance(r, RoomSendResponse) for r in results)
        seen = []
        token = None
        while True:
            page = await bob.room_messages(room_id, start=token, limit=100)
            assert isinstance(page, RoomMessagesResponse), page
            seen.extend(e.body for e in page.chunk if isinstance(e, RoomMessageText))
            if not page.end or not page.chunk:
                break
            token = page.end
        assert len(seen) == total and len(set(seen)) == total, (len(seen), len(set(seen)))
    finally:
        await close_all(alice, bob)


async def test_searching_history_through_nio(server):
    alice = await registered(server, "alice")
    try:
        room_id = (await alice.room_create(name="Notes")).room_id
        for body in ("buy oat milk", "call the plumber", "the plumber is coming Tuesday"):
            await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
        response = await alice.send(
            "POST", "/_matrix/client/v3/search",
            '{"search_categories": {"room_events": {"search_term": "plumber", "order_by": "recent"}}}',
            {"Authorization": f"Bearer {alice.access_token}"},
        )
        assert response.status == 200
        found = (await response.json())["search_categories"]["room_events"]
        assert found["count"] == 2
        assert [r["result"]["content"]["body"] for r in found["results"]] == ["the plumber is coming Tuesday", "call the plumber"]
    finally:
        await close_all(alice)
