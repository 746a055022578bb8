"""Typing, read receipts, presence and ignoring a user, driven by matrix-nio against the
running `hearth` binary."""

from nio import AsyncClient, RoomPreset
from nio.events.ephemeral import ReceiptEvent, TypingNoticeEvent
from nio.events.presence import PresenceEvent
from nio.events.room_events import RoomMessageText
from nio.responses import (
    PresenceGetResponse,
    PresenceSetResponse,
    RoomReadMarkersResponse,
    RoomTypingResponse,
    SyncResponse,
    UpdateReceiptMarkerResponse,
)

from nio_helpers import PASSWORD, close_all, registered, sync_until


async def test_typing_receipts_and_presence_reach_the_other_member(server):
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    try:
        room_id = (await alice.room_create(preset=RoomPreset.public_chat)).room_id
        await bob.join(room_id)
        await bob.sync(timeout=0)

        typing = await alice.room_typing(room_id, typing_state=True, timeout=10000)
        assert isinstance(typing, RoomTypingResponse), typing

        def sees_typing(response):
            room = response.rooms.join.get(room_id)
            return room is not None and any(
                isinstance(e, TypingNoticeEvent) and "@alice:localhost" in e.users for e in room.ephemeral
            )

        await sync_until(bob, sees_typing)
        assert "@alice:localhost" in bob.rooms[room_id].typing_users

        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "read me"})
        await sync_until(bob, lambda r: any(isinstance(e, RoomMessageText) for e in (r.rooms.join[room_id].timeline.events if room_id in r.rooms.join else [])))
        receipt = await bob.update_receipt_marker(room_id, sent.event_id)
        assert isinstance(receipt, UpdateReceiptMarkerResponse), receipt
        markers = await bob.room_read_markers(room_id, fully_read_event=sent.event_id, read_event=sent.event_id)
        assert isinstance(markers, RoomReadMarkersResponse), markers

        def sees_receipt(response):
            room = response.rooms.join.get(room_id)
            return room is not None and any(
                isinstance(e, ReceiptEvent) and any(r.user_id == "@bob:localhost" and r.event_id == sent.event_id for r in e.receipts)
                for e in room.ephemeral
            )

        await sync_until(alice, sees_receipt)
        assert alice.rooms[room_id].read_receipts["@bob:localhost"].event_id == sent.event_id

        set_presence = await alice.set_presence("unavailable", "lunch")
        assert isinstance(set_presence, PresenceSetResponse), set_presence
        got = await bob.get_presence("@alice:localhost")
        assert isinstance(got, PresenceGetResponse) and got.presence == "unavailable" and got.status_msg == "lunch"

        def sees_presence(response):
            return any(isinstance(e, PresenceEvent) and e.user_id == "@alice:localhost" and e.presence == "unavailable" for e in response.presence_events)

        await sync_until(bob, sees_presence)
    finally:
        await close_all(alice, bob)


async def test_ignoring_a_user_hides_their_messages(server):
    alice = await registered(server, "alice")
    troll = await registered(server, "troll")
    try:
        room_id = (await alice.room_create(preset=RoomPreset.public_chat)).room_id
        await troll.join(room_id)
        response = await alice.send("PUT", f"/_matrix/client/v3/user/@alice:localhost/account_data/m.ignored_user_list",
                                    '{"ignored_users": {"@troll:localhost": {}}}', {"Authorization": f"Bearer {alice.access_token}"})
        assert response.status == 200
        await troll.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "trolling"})
        await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "civil"})
        response = await sync_until(alice, lambda r: room_id in r.rooms.join and any(getattr(e, "body", None) == "civil" for e in r.rooms.join[room_id].timeline.events))
        bodies = [getattr(e, "body", None) for e in response.rooms.join[room_id].timeline.events]
        assert "trolling" not in bodies
        history = await alice.room_messages(room_id, limit=50)
        assert "trolling" not in [getattr(e, "body", None) for e in history.chunk]
    finally:
        await close_all(alice, troll)
