"""End-to-end encryption with matrix-nio's real cryptography (vodozemac) against the running
`hearth` binary: an encrypted DM and an encrypted group of three in which every member decrypts
the others' messages, while the server only ever holds m.room.encrypted ciphertext; and a new
device of a user that restores the room keys from the server-side key backup and decrypts the
history it was not there for."""

import asyncio
import base64
import json
import tempfile
import urllib.error
import urllib.request
from urllib.parse import quote

import vodozemac

from nio import AsyncClient, AsyncClientConfig, RoomPreset
from nio.crypto import InboundGroupSession
from nio.events.room_events import MegolmEvent, RoomMessageText
from nio.responses import (
    JoinResponse,
    KeysClaimResponse,
    KeysQueryResponse,
    KeysUploadResponse,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomSendResponse,
    SyncResponse,
)

PASSWORD = "correct horse battery"
ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


def encrypted_client(server, name, device_id=None):
    store = tempfile.mkdtemp(prefix=f"nio-store-{name}-")
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    return AsyncClient(server.base_url, f"@{name}:localhost", device_id=device_id, store_path=store, config=config)


async def registered(server, name):
    client = encrypted_client(server, name)
    response = await client.register(name, PASSWORD, device_name=f"{name}'s nio")
    assert response.user_id == f"@{name}:localhost", response
    await settle(client)
    return client


async def settle(client):
    """What nio's sync_forever does between syncs: upload, query and claim keys as needed."""
    if client.should_upload_keys:
        response = await client.keys_upload()
        assert isinstance(response, KeysUploadResponse), response
    if client.should_query_keys:
        response = await client.keys_query()
        assert isinstance(response, KeysQueryResponse), response
    if client.should_claim_keys:
        response = await client.keys_claim(client.get_users_for_key_claiming())
        assert isinstance(response, KeysClaimResponse), response


async def sync_until(client, predicate, attempts=20):
    for _ in range(attempts):
        response = await client.sync(timeout=3000, full_state=False)
        assert isinstance(response, SyncResponse), response
        await settle(client)
        if predicate(response):
            return response
    raise AssertionError(f"condition not reached through /sync for {client.user_id}")


def decrypted_texts(response, room_id):
    room = response.rooms.join.get(room_id)
    return [e.body for e in room.timeline.events if isinstance(e, RoomMessageText)] if room else []


def undecryptable(response, room_id):
    room = response.rooms.join.get(room_id)
    return [e for e in room.timeline.events if isinstance(e, MegolmEvent)] if room else []


async def encrypted_room(creator, others, **options):
    created = await creator.room_create(invite=[o.user_id for o in others], initial_state=[ENCRYPTION], **options)
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    for other in others:
        await sync_until(other, lambda r: room_id in r.rooms.invite)
        assert isinstance(await other.join(room_id), JoinResponse)
    everyone = {creator.user_id, *(o.user_id for o in others)}
    for client in (creator, *others):
        await sync_until(client, lambda r: room_id in client.rooms and set(client.rooms[room_id].users) >= everyone)
        assert client.rooms[room_id].encrypted
    return room_id


async def send_secret(client, room_id, text):
    sent = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text}, ignore_unverified_devices=True)
    assert isinstance(sent, RoomSendResponse), sent
    return sent.event_id


def raw_get(client, path):
    """A GET straight to the server (nio would decrypt what it returns)."""
    request = urllib.request.Request(client.homeserver + path, headers={"Authorization": f"Bearer {client.access_token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


async def assert_ciphertext_only(client, room_id, event_id, text):
    """The event as the server stores and serves it: m.room.encrypted, no plaintext anywhere."""
    path = f"/_matrix/client/v3/rooms/{quote(room_id)}/event/{quote(event_id)}"
    raw = await asyncio.to_thread(raw_get, client, path)
    assert raw["type"] == "m.room.encrypted", raw
    assert raw["content"]["algorithm"] == "m.megolm.v1.aes-sha2" and raw["content"]["ciphertext"]
    assert text not in json.dumps(raw)


async def close_all(*clients):
    for client in clients:
        await client.close()


async def test_an_encrypted_dm_between_two_nio_users(server):
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    try:
        room_id = await encrypted_room(alice, [bob], is_direct=True, preset=RoomPreset.trusted_private_chat)
        event_id = await send_secret(alice, room_id, "the launch code is 0000")
        await sync_until(bob, lambda r: "the launch code is 0000" in decrypted_texts(r, room_id))
        await assert_ciphertext_only(bob, room_id, event_id, "launch code")

        reply_id = await send_secret(bob, room_id, "noted, burning this message")
        await sync_until(alice, lambda r: "noted, burning this message" in decrypted_texts(r, room_id))
        await assert_ciphertext_only(alice, room_id, reply_id, "burning")

        # Server-side search cannot find what it cannot read.
        body = json.dumps({"search_categories": {"room_events": {"search_term": "launch"}}}).encode()
        request = urllib.request.Request(
            alice.homeserver + "/_matrix/client/v3/search", data=body, method="POST",
            headers={"Authorization": f"Bearer {alice.access_token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.load(answer)["search_categories"]["room_events"]["count"] == 0
    finally:
        await close_all(alice, bob)


async def test_an_encrypted_group_of_three(server):
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    carol = await registered(server, "carol")
    clients = (alice, bob, carol)
    try:
        room_id = await encrypted_room(alice, [bob, carol], name="Secret plans", preset=RoomPreset.private_chat)
        for sender in clients:
            text = f"{sender.user_id} says hi"
            event_id = await send_secret(sender, room_id, text)
            for receiver in clients:
                if receiver is not sender:
                    response = await sync_until(receiver, lambda r: text in decrypted_texts(r, room_id))
                    assert not undecryptable(response, room_id)
            await assert_ciphertext_only(sender, room_id, event_id, "says hi")
    finally:
        await close_all(*clients)


def unpadded(data):
    return base64.b64encode(data).decode().rstrip("=")


def request_json(client, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"}
    request = urllib.request.Request(client.homeserver + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


async def back_up_room_keys(client):
    """What a client's key backup does (m.megolm_backup.v1.curve25519-aes-sha2): each Megolm
    session it holds, encrypted to the backup's Curve25519 key, uploaded to a new backup version.
    Returns the backup's private key (the user's recovery key) and the version."""
    recovery = vodozemac.PkDecryption()
    auth_data = {"public_key": recovery.public_key.to_base64()}
    created = await asyncio.to_thread(
        request_json, client, "POST", "/_matrix/client/v3/room_keys/version",
        {"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": auth_data},
    )
    version = created["version"]
    encryptor = vodozemac.PkEncryption.from_key(recovery.public_key)
    rooms = {}
    for session in client.olm.inbound_group_store:
        plaintext = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "sender_key": session.sender_key,
            "session_key": session.export_session(session.first_known_index),
            "sender_claimed_keys": {"ed25519": session.ed25519},
            "forwarding_curve25519_key_chain": session.forwarding_chain,
        }
        message = encryptor.encrypt(json.dumps(plaintext).encode())
        rooms.setdefault(session.room_id, {"sessions": {}})["sessions"][session.id] = {
            "first_message_index": session.first_known_index,
            "forwarded_count": 0,
            "is_verified": True,
            "session_data": {
                "ephemeral": unpadded(message.ephemeral_key),
                "ciphertext": unpadded(message.ciphertext),
                "mac": unpadded(message.mac),
            },
        }
    uploaded = await asyncio.to_thread(
        request_json, client, "PUT", f"/_matrix/client/v3/room_keys/keys?version={version}", {"rooms": rooms}
    )
    assert uploaded["count"] == sum(len(r["sessions"]) for r in rooms.values()) > 0, uploaded
    return recovery.key, version


async def restore_room_keys(client, recovery_key):
    """A new device: finds the current backup, downloads it and imports every session."""
    info = await asyncio.to_thread(request_json, client, "GET", "/_matrix/client/v3/room_keys/version")
    decryptor = vodozemac.PkDecryption.from_key(recovery_key)
    assert info["auth_data"]["public_key"] == decryptor.public_key.to_base64()
    backup = await asyncio.to_thread(
        request_json, client, "GET", f"/_matrix/client/v3/room_keys/keys?version={info['version']}"
    )
    restored = 0
    for room_id, room in backup["rooms"].items():
        for data in room["sessions"].values():
            sealed = data["session_data"]
            message = vodozemac.Message.from_base64(sealed["ciphertext"], sealed["mac"], sealed["ephemeral"])
            session = json.loads(decryptor.decrypt(message))
            imported = InboundGroupSession.import_session(
                session["session_key"], session["sender_claimed_keys"]["ed25519"], session["sender_key"],
                room_id, session["forwarding_curve25519_key_chain"],
            )
            client.olm.inbound_group_store.add(imported)
            client.olm.save_inbound_group_session(imported)
            restored += 1
    return restored


async def history(client, room_id, since):
    response = await client.room_messages(room_id, start=since, limit=100)
    assert isinstance(response, RoomMessagesResponse), response
    texts = [e.body for e in response.chunk if isinstance(e, RoomMessageText)]
    locked = [e for e in response.chunk if isinstance(e, MegolmEvent)]
    return texts, locked


async def test_a_new_device_restores_keys_from_the_backup_and_reads_old_history(server):
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    laptop = encrypted_client(server, "alice")
    try:
        room_id = await encrypted_room(alice, [bob], is_direct=True, preset=RoomPreset.trusted_private_chat)
        secrets = [f"old secret number {i}" for i in range(3)]
        for text in secrets:
            await send_secret(bob, room_id, text)
        await sync_until(alice, lambda r: secrets[-1] in decrypted_texts(r, room_id))
        await send_secret(alice, room_id, "and one from me")
        recovery_key, version = await back_up_room_keys(alice)

        # Alice signs in on a new laptop: the old messages are there, but locked.
        assert (await laptop.login(PASSWORD, device_name="alice's laptop")).device_id
        await settle(laptop)
        first = await sync_until(laptop, lambda r: room_id in r.rooms.join)
        texts, locked = await history(laptop, room_id, first.next_batch)
        assert not set(secrets) & set(texts) and len(locked) >= 4, (texts, locked)

        # With the recovery key, the laptop restores the backup and reads the history.
        assert await restore_room_keys(laptop, recovery_key) >= 2
        texts, locked = await history(laptop, room_id, first.next_batch)
        assert set(secrets + ["and one from me"]) <= set(texts), texts
        assert not locked

        # The backup is still the current version, and a stale version cannot be written to.
        newer = await asyncio.to_thread(
            request_json, alice, "POST", "/_matrix/client/v3/room_keys/version",
            {"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"public_key": "x"}},
        )
        assert int(newer["version"]) > int(version)
        try:
            await asyncio.to_thread(request_json, alice, "PUT", f"/_matrix/client/v3/room_keys/keys?version={version}", {"rooms": {}})
            raise AssertionError("writing to an old backup version must fail")
        except urllib.error.HTTPError as error:
            body = json.load(error)
            assert error.code == 403 and body["errcode"] == "M_WRONG_ROOM_KEYS_VERSION", body
            assert body["current_version"] == newer["version"]
    finally:
        await close_all(alice, bob, laptop)
