"""Federation with a real Synapse on loopback: a Hearth user joins a room created on Synapse and a
Synapse user joins a room created on Hearth, messages go both ways through matrix-nio clients on
each side, and messages sent while Synapse is stopped all arrive once it is back.

Synapse runs from the venv scripts/test makes (HEARTH_TEST_SYNAPSE_PYTHON); without it these tests
skip with the reason printed (or fail when HEARTH_TEST_REQUIRE_SYNAPSE=1, as in CI)."""

import asyncio
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from nio import AsyncClient, RoomMessageText
from nio.api import RoomVisibility
from nio.responses import SyncResponse

from conftest import restart_server, start_server

PASSWORD = "correct horse battery"
SYNAPSE_PYTHON = os.environ.get("HEARTH_TEST_SYNAPSE_PYTHON", "")
REQUIRE_SYNAPSE = os.environ.get("HEARTH_TEST_REQUIRE_SYNAPSE") == "1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def certificate(directory):
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )
    return cert, key


def wait_for(url, process, log, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited during start-up:\n{Path(log).read_text()[-4000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer:\n{Path(log).read_text()[-4000:]}")


class Synapse:
    """A Synapse on loopback: plain client port, TLS federation port named in its server name."""

    def __init__(self, workdir):
        if not SYNAPSE_PYTHON or not Path(SYNAPSE_PYTHON).exists():
            reason = "Synapse is not installed (scripts/test installs it; HEARTH_TEST_SYNAPSE_PYTHON unset)"
            if REQUIRE_SYNAPSE:
                pytest.fail(reason)
            pytest.skip(reason)
        self.workdir = workdir
        self.client_port, self.federation_port = free_port(), free_port()
        self.server_name = f"127.0.0.1:{self.federation_port}"
        self.base_url = f"http://127.0.0.1:{self.client_port}"
        cert, key = certificate(workdir)
        config = workdir / "homeserver.yaml"
        subprocess.run(
            [SYNAPSE_PYTHON, "-m", "synapse.app.homeserver", "--server-name", self.server_name, "--config-path",
             str(config), "--data-directory", str(workdir), "--generate-config", "--report-stats=no"],
            check=True, capture_output=True, cwd=workdir,
        )
        unlimited = {"per_second": 100000, "burst_count": 100000}
        overrides = {
            "listeners": [
                {"port": self.client_port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                 "resources": [{"names": ["client"], "compress": False}]},
                {"port": self.federation_port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": True,
                 "resources": [{"names": ["federation", "keys"], "compress": False}]},
            ],
            "tls_certificate_path": str(cert),
            "tls_private_key_path": str(key),
            "database": {"name": "sqlite3", "args": {"database": str(workdir / "homeserver.db")}},
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "federation_verify_certificates": False,
            "ip_range_blacklist": [],
            "ip_range_whitelist": ["127.0.0.0/8", "::1/128"],
            "federation_ip_range_blacklist": [],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "allow_public_rooms_over_federation": True,
            "room_list_publication_rules": [{"action": "allow"}],
            "presence": {"enabled": True},
            "bcrypt_rounds": 4,
            "federation": {"destination_min_retry_interval": "1s", "destination_max_retry_interval": "5s",
                           "max_short_retry_delay": "1s", "max_long_retry_delay": "2s"},
            "rc_message": unlimited, "rc_registration": unlimited,
            "rc_login": {"address": unlimited, "account": unlimited, "failed_attempts": unlimited},
            "rc_joins": {"local": unlimited, "remote": unlimited}, "rc_joins_per_room": unlimited,
            "rc_invites": {"per_room": unlimited, "per_user": unlimited, "per_issuer": unlimited},
            "rc_federation": {"window_size": 1000, "sleep_limit": 1000, "sleep_delay": 1, "reject_limit": 1000,
                              "concurrent": 100},
            "log_config": None,
        }
        script = (
            "import sys, yaml; path = sys.argv[1]; config = yaml.safe_load(open(path)); "
            "config.update(yaml.safe_load(sys.argv[2])); config.pop('log_config', None); "
            "yaml.safe_dump(config, open(path, 'w'))"
        )
        subprocess.run([SYNAPSE_PYTHON, "-c", script, str(config), json.dumps(overrides)], check=True)
        self.config = config
        self.process = None
        self.start()

    def start(self):
        log = self.workdir / "synapse.log"
        self.process = subprocess.Popen(
            [SYNAPSE_PYTHON, "-m", "synapse.app.homeserver", "--config-path", str(self.config)], cwd=self.workdir,
            stdout=open(log, "a"), stderr=subprocess.STDOUT,
        )
        wait_for(f"{self.base_url}/_matrix/client/versions", self.process, log)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def synapse():
    workdir = Path(tempfile.mkdtemp(prefix="synapse-fed-"))
    server = Synapse(workdir)
    yield server
    server.stop()


@pytest.fixture
def hearth(make_server, tmp_path):
    """A Hearth named 127.0.0.1:<port> with a TLS federation listener on that port."""
    port = free_port()
    cert, key = certificate(tmp_path)
    server = make_server({
        "HEARTH_SERVER_NAME": f"127.0.0.1:{port}",
        "HEARTH_LISTEN__EXTRA": (
            f'[{{address="127.0.0.1:{port}", resources=["federation","keys","media"], '
            f'tls={{certificate="{cert}", private_key="{key}"}}}}]'
        ),
        "HEARTH_FEDERATION__VERIFY_CERTIFICATES": "false",
        "HEARTH_FEDERATION__ALLOWED_IP_RANGES": '["127.0.0.0/8"]',
        "HEARTH_FEDERATION__RETRY_MIN_MS": "200",
        "HEARTH_FEDERATION__RETRY_MAX_MS": "2000",
    })
    server.server_name = f"127.0.0.1:{port}"
    return server


async def user(base_url, server_name, name):
    client = AsyncClient(base_url, name)
    response = await client.register(name, PASSWORD, device_name=f"{name}'s nio")
    assert response.user_id == f"@{name}:{server_name}", response
    return client


def join_via(client, room_id, via):
    """POST /join/{room}?via=… (nio's join has no via)."""
    path = f"/_matrix/client/v3/join/{urllib.parse.quote(room_id, safe='')}?via={urllib.parse.quote(via)}"
    request = urllib.request.Request(
        client.homeserver + path, data=b"{}", method="POST",
        headers={"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"},
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert body["room_id"] == room_id, body
    return time.monotonic() - started


def get_json(client, path):
    request = urllib.request.Request(client.homeserver + path,
                                     headers={"Authorization": f"Bearer {client.access_token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


async def messages_until(client, room_id, wanted, seconds=60):
    """Syncs until every body in `wanted` arrived in the room; returns all bodies seen, in order."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = await client.sync(timeout=3000, full_state=False)
        assert isinstance(response, SyncResponse), response
        room = response.rooms.join.get(room_id)
        if room:
            seen += [event.body for event in room.timeline.events if isinstance(event, RoomMessageText)]
        if all(body in seen for body in wanted):
            return seen
    raise AssertionError(f"not all of {wanted} arrived; saw {seen}")


async def history(client, room_id, pages=10):
    """Message bodies paging back (/messages dir=b) from now to the room's start."""
    from nio.responses import RoomMessagesResponse

    bodies, token = [], ""
    for _ in range(pages):
        page = await client.room_messages(room_id, start=token, limit=20)
        assert isinstance(page, RoomMessagesResponse), page
        bodies += [e.body for e in page.chunk if isinstance(e, RoomMessageText)]
        if not page.end or not page.chunk:
            break
        token = page.end
    return bodies


async def send(client, room_id, body):
    response = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    assert getattr(response, "event_id", None), response
    return time.monotonic()


def restored(client, base_url):
    """The same login on a new client (after its server restarted on another port)."""
    fresh = AsyncClient(base_url, client.user_id)
    fresh.restore_login(client.user_id, client.device_id, client.access_token)
    return fresh


async def test_rooms_span_hearth_and_synapse(hearth, synapse):
    alice = await user(hearth.base_url, hearth.server_name, "alice")
    sam = await user(synapse.base_url, synapse.server_name, "sam")
    try:
        await alice.sync(timeout=0)
        await sam.sync(timeout=0)

        # A room on Synapse (room version 12, Synapse's default); Alice joins through Synapse.
        created = await sam.room_create(name="Made on Synapse", visibility=RoomVisibility.public)
        synapse_room = created.room_id
        await send(sam, synapse_room, "history on Synapse")
        join_seconds = join_via(alice, synapse_room, synapse.server_name)
        print(f"\nHearth joined a Synapse room in {join_seconds * 1000:.0f} ms")
        sent = await send(sam, synapse_room, "hello from Synapse")
        await messages_until(alice, synapse_room, ["hello from Synapse"])
        # What was said before she joined: Hearth backfills it from Synapse as she pages back.
        earlier = await history(alice, synapse_room)
        assert "history on Synapse" in earlier, earlier
        print(f"Synapse -> Hearth /sync: {(time.monotonic() - sent) * 1000:.0f} ms")
        await sam.sync(timeout=0)
        sent = await send(alice, synapse_room, "hello from Hearth")
        await messages_until(sam, synapse_room, ["hello from Hearth"])
        print(f"Hearth -> Synapse /sync: {(time.monotonic() - sent) * 1000:.0f} ms")

        # A room on Hearth; Sam joins through Hearth.
        created = await alice.room_create(name="Made on Hearth", visibility=RoomVisibility.public)
        hearth_room = created.room_id
        join_seconds = join_via(sam, hearth_room, hearth.server_name)
        print(f"Synapse joined a Hearth room in {join_seconds * 1000:.0f} ms")
        await send(alice, hearth_room, "welcome to Hearth")
        await messages_until(sam, hearth_room, ["welcome to Hearth"])
        await send(sam, hearth_room, "thanks, Hearth")
        await messages_until(alice, hearth_room, ["thanks, Hearth"])

        # Each side browses the other's public room directory.
        path = f"/_matrix/client/v3/publicRooms?server={urllib.parse.quote(synapse.server_name)}"
        listed = get_json(alice, path)
        assert synapse_room in [room["room_id"] for room in listed["chunk"]], listed
        path = f"/_matrix/client/v3/publicRooms?server={urllib.parse.quote(hearth.server_name)}"
        listed = get_json(sam, path)
        assert [room.get("name") for room in listed["chunk"] if room["room_id"] == hearth_room] == \
            ["Made on Hearth"], listed

        # Synapse goes down; Alice sends ten messages; all arrive once Synapse is back.
        synapse.stop()
        away = [f"while Synapse was away {i}" for i in range(10)]
        for body in away:
            await send(alice, hearth_room, body)
        synapse.start()
        seen = await messages_until(sam, hearth_room, away, seconds=90)
        assert [body for body in seen if body in away] == away, seen
    finally:
        await alice.close()
        await sam.close()


async def sync_until(client, predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = await client.sync(timeout=3000, full_state=False)
        assert isinstance(response, SyncResponse), response
        if predicate(response):
            return response
    raise AssertionError("condition not reached through /sync")


async def test_invites_typing_receipts_renames_redactions_and_kicks_across_servers(hearth, synapse):
    alice = await user(hearth.base_url, hearth.server_name, "alice")
    sam = await user(synapse.base_url, synapse.server_name, "sam")
    try:
        await alice.sync(timeout=0)
        await sam.sync(timeout=0)

        # Sam (Synapse) opens a DM with Alice (Hearth): the invite crosses, she joins.
        created = await sam.room_create(is_direct=True, invite=[alice.user_id], name="Sam and Alice")
        dm = created.room_id
        await sync_until(alice, lambda r: dm in r.rooms.invite)
        joined = await alice.join(dm)
        assert getattr(joined, "room_id", None) == dm, joined
        await send(sam, dm, "glad you could join")
        await messages_until(alice, dm, ["glad you could join"])

        # Alice (Hearth) invites Sam into a room on Hearth; he joins.
        created = await alice.room_create(name="Hearth group")
        group = created.room_id
        invited = await alice.room_invite(group, sam.user_id)
        assert not hasattr(invited, "status_code"), invited
        await sync_until(sam, lambda r: group in r.rooms.invite)
        joined = await sam.join(group)
        assert getattr(joined, "room_id", None) == group, joined
        await send(sam, group, "hi Hearth group")
        await messages_until(alice, group, ["hi Hearth group"])

        # Typing and read receipts, both ways.
        await alice.room_typing(group, True, timeout=10000)
        await sync_until(sam, lambda r: group in r.rooms.join and any(
            alice.user_id in getattr(e, "users", []) for e in r.rooms.join[group].ephemeral))
        await sam.room_typing(group, True, timeout=10000)
        await sync_until(alice, lambda r: group in r.rooms.join and any(
            sam.user_id in getattr(e, "users", []) for e in r.rooms.join[group].ephemeral))
        read = await alice.room_send(group, "m.room.message", {"msgtype": "m.text", "body": "read me"})
        await messages_until(sam, group, ["read me"])
        await sam.room_read_markers(group, read.event_id, read.event_id)
        await sync_until(alice, lambda r: group in r.rooms.join and any(
            any(getattr(receipt, "user_id", None) == sam.user_id and receipt.event_id == read.event_id
                for receipt in getattr(e, "receipts", [])) for e in r.rooms.join[group].ephemeral))
        heard = await sam.room_send(group, "m.room.message", {"msgtype": "m.text", "body": "and you read me"})
        await messages_until(alice, group, ["and you read me"])
        await alice.room_read_markers(group, heard.event_id, heard.event_id)
        await sync_until(sam, lambda r: group in r.rooms.join and any(
            any(getattr(receipt, "user_id", None) == alice.user_id and receipt.event_id == heard.event_id
                for receipt in getattr(e, "receipts", [])) for e in r.rooms.join[group].ephemeral))

        # Presence with a status message, both ways.
        await alice.set_presence("online", "on Hearth today")
        await sync_until(sam, lambda r: any(
            p.user_id == alice.user_id and p.status_msg == "on Hearth today" for p in r.presence_events))
        await sam.set_presence("unavailable", "out for lunch")
        await sync_until(alice, lambda r: any(
            p.user_id == sam.user_id and p.presence == "unavailable" and p.status_msg == "out for lunch"
            for p in r.presence_events))

        # Alice, the group's admin, renames it; Sam sees the new name.
        await alice.room_put_state(group, "m.room.name", {"name": "Renamed on Hearth"})
        await sync_until(sam, lambda r: any(
            getattr(e, "name", None) == "Renamed on Hearth" for e in
            (r.rooms.join[group].timeline.events if group in r.rooms.join else [])))

        # Sam deletes his message for everyone; the redaction reaches Alice.
        sent = await sam.room_send(group, "m.room.message", {"msgtype": "m.text", "body": "oops"})
        await messages_until(alice, group, ["oops"])
        await sam.room_redact(group, sent.event_id)
        await sync_until(alice, lambda r: group in r.rooms.join and any(
            getattr(e, "redacts", None) == sent.event_id for e in r.rooms.join[group].timeline.events))

        # Alice kicks Sam; Synapse sees him leave.
        await alice.room_kick(group, sam.user_id, reason="bye")
        await sync_until(sam, lambda r: group in r.rooms.leave)
    finally:
        await alice.close()
        await sam.close()


async def encrypted_user(base_url, server_name, name):
    from nio import AsyncClientConfig
    from test_nio_e2ee import settle

    store = tempfile.mkdtemp(prefix=f"nio-store-{name}-")
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
    client = AsyncClient(base_url, f"@{name}:{server_name}", store_path=store, config=config)
    response = await client.register(name, PASSWORD, device_name=f"{name}'s nio")
    assert response.user_id == f"@{name}:{server_name}", response
    await settle(client)
    return client


async def test_end_to_end_encryption_between_a_hearth_and_a_synapse_user(hearth, synapse):
    """Device keys and one-time keys are fetched across servers, room keys travel as to-device
    messages over federation, and each side decrypts the other's messages."""
    from test_nio_e2ee import decrypted_texts, encrypted_room, send_secret, sync_until as e2ee_sync_until

    alice = await encrypted_user(hearth.base_url, hearth.server_name, "alice")
    sam = await encrypted_user(synapse.base_url, synapse.server_name, "sam")
    try:
        room_id = await encrypted_room(alice, [sam], is_direct=True)
        await send_secret(alice, room_id, "a secret from Hearth")
        await e2ee_sync_until(sam, lambda r: "a secret from Hearth" in decrypted_texts(r, room_id))
        await send_secret(sam, room_id, "a secret from Synapse")
        await e2ee_sync_until(alice, lambda r: "a secret from Synapse" in decrypted_texts(r, room_id))

        # Alice signs in on a second device: Hearth tells Synapse (m.device_list_update), Sam's
        # client hears of it through Synapse's /sync, and his next message reaches that device too.
        from nio import AsyncClientConfig
        from test_nio_e2ee import settle

        config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
        second = AsyncClient(hearth.base_url, alice.user_id, store_path=tempfile.mkdtemp(prefix="nio-store-alice2-"),
                             config=config)
        try:
            logged_in = await second.login(PASSWORD, device_name="alice's second nio")
            assert getattr(logged_in, "device_id", None), logged_in
            await settle(second)
            await second.sync(timeout=0)
            await e2ee_sync_until(sam, lambda r: alice.user_id in r.device_list.changed)
            await send_secret(sam, room_id, "a secret for both of Alice's devices")
            await e2ee_sync_until(second, lambda r: "a secret for both of Alice's devices" in decrypted_texts(r, room_id))
        finally:
            await second.close()
    finally:
        await alice.close()
        await sam.close()


def png_bytes():
    from PIL import Image
    import io

    image = Image.new("RGB", (320, 200), (200, 80, 40))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def authenticated_download(client, mxc):
    server_and_id = mxc[len("mxc://"):]
    request = urllib.request.Request(
        f"{client.homeserver}/_matrix/client/v1/media/download/{server_and_id}",
        headers={"Authorization": f"Bearer {client.access_token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.headers.get("Content-Type"), response.read()


async def test_pictures_are_downloaded_across_servers(hearth, synapse):
    import asyncio
    import io

    alice = await user(hearth.base_url, hearth.server_name, "alice")
    sam = await user(synapse.base_url, synapse.server_name, "sam")
    try:
        picture = png_bytes()
        # Sam uploads on Synapse; Alice's Hearth fetches it over federation.
        uploaded, _ = await sam.upload(io.BytesIO(picture), content_type="image/png", filename="sam.png",
                                       filesize=len(picture))
        kind, got = await asyncio.to_thread(authenticated_download, alice, uploaded.content_uri)
        assert (kind, got == picture) == ("image/png", True)
        # Alice uploads on Hearth; Sam's Synapse fetches it from Hearth.
        uploaded, _ = await alice.upload(io.BytesIO(picture), content_type="image/png", filename="alice.png",
                                         filesize=len(picture))
        kind, got = await asyncio.to_thread(authenticated_download, sam, uploaded.content_uri)
        assert (kind, got == picture) == ("image/png", True)
    finally:
        await alice.close()
        await sam.close()


async def test_a_late_joiner_on_synapse_reads_history_from_hearth(hearth, synapse):
    """Synapse backfills a Hearth room's history for its user who joined after it was written."""
    from nio.responses import RoomMessagesResponse

    alice = await user(hearth.base_url, hearth.server_name, "alice")
    sam = await user(synapse.base_url, synapse.server_name, "sam")
    try:
        created = await alice.room_create(name="History", visibility=RoomVisibility.public)
        room_id = created.room_id
        early = [f"early message {i}" for i in range(25)]
        for body in early:
            await send(alice, room_id, body)
        join_via(sam, room_id, hearth.server_name)
        synced = await sync_until(sam, lambda r: room_id in r.rooms.join)
        token = synced.rooms.join[room_id].timeline.prev_batch
        seen = []
        for _ in range(20):
            page = await sam.room_messages(room_id, start=token, limit=10)
            assert isinstance(page, RoomMessagesResponse), page
            seen += [e.body for e in page.chunk if isinstance(e, RoomMessageText)]
            if "early message 0" in seen or not page.end or not page.chunk:
                break
            token = page.end
        assert set(early) <= set(seen), seen
    finally:
        await alice.close()
        await sam.close()


def post_json(client, path, body):
    """POST a client-server request nio has no method for; returns (status, JSON body)."""
    request = urllib.request.Request(
        client.homeserver + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def knock_via(client, room_id, via, reason):
    path = f"/_matrix/client/v3/knock/{urllib.parse.quote(room_id, safe='')}?via={urllib.parse.quote(via)}"
    status, body = post_json(client, path, {"reason": reason})
    assert (status, body.get("room_id")) == (200, room_id), body
    return body


async def membership_becomes(client, room_id, user_id, membership, seconds=60):
    """Polls the room's member event for `user_id` (read by `client`) until it is `membership`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = await client.room_get_state_event(room_id, "m.room.member", user_id)
        if getattr(response, "content", {}).get("membership") == membership:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{user_id} never became {membership} in {room_id}")


async def test_invites_are_rejected_and_knocks_answered_across_servers(hearth, synapse):
    alice = await user(hearth.base_url, hearth.server_name, "alice")
    sam = await user(synapse.base_url, synapse.server_name, "sam")
    knock_rules = [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]
    try:
        await alice.sync(timeout=0)
        await sam.sync(timeout=0)

        # Sam (Synapse) invites Alice; she declines through Synapse (make_leave/send_leave).
        created = await sam.room_create(name="Declined on Synapse", invite=[alice.user_id])
        declined = created.room_id
        await sync_until(alice, lambda r: declined in r.rooms.invite)
        left = await alice.room_leave(declined)
        assert not hasattr(left, "status_code"), left
        await membership_becomes(sam, declined, alice.user_id, "leave")
        await sync_until(alice, lambda r: declined in r.rooms.leave and declined not in r.rooms.invite)

        # Alice (Hearth) invites Sam; he declines, and Synapse tells Hearth the same way.
        created = await alice.room_create(name="Declined on Hearth", invite=[sam.user_id])
        refused = created.room_id
        await sync_until(sam, lambda r: refused in r.rooms.invite)
        left = await sam.room_leave(refused)
        assert not hasattr(left, "status_code"), left
        await membership_becomes(alice, refused, sam.user_id, "leave")

        # Sam knocks on a Hearth room; Alice sees the knock, lets him in, and he joins.
        created = await alice.room_create(name="Knock on Hearth", initial_state=knock_rules)
        hearth_room = created.room_id
        knock_via(sam, hearth_room, hearth.server_name, "may I?")
        await membership_becomes(alice, hearth_room, sam.user_id, "knock")
        invited = await alice.room_invite(hearth_room, sam.user_id)
        assert not hasattr(invited, "status_code"), invited
        await sync_until(sam, lambda r: hearth_room in r.rooms.invite)
        joined = await sam.join(hearth_room)
        assert getattr(joined, "room_id", None) == hearth_room, joined
        await send(sam, hearth_room, "thanks for letting me in")
        await messages_until(alice, hearth_room, ["thanks for letting me in"])

        # Alice knocks on a Synapse room: she sees it under `knock` with its name; Sam lets her in.
        created = await sam.room_create(name="Knock on Synapse", initial_state=knock_rules)
        synapse_room = created.room_id
        knock_via(alice, synapse_room, synapse.server_name, "hello?")
        # (nio's sync response has no `knock` section: read the raw /sync.)
        knocked = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and synapse_room not in knocked.get("rooms", {}).get("knock", {}):
            request = urllib.request.Request(
                alice.homeserver + "/_matrix/client/v3/sync?timeout=1000",
                headers={"Authorization": f"Bearer {alice.access_token}"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                knocked = json.loads(response.read())
        knock_state = knocked["rooms"]["knock"][synapse_room]["knock_state"]["events"]
        assert any(e["type"] == "m.room.name" and e["content"]["name"] == "Knock on Synapse"
                   for e in knock_state), knock_state
        await membership_becomes(sam, synapse_room, alice.user_id, "knock")
        invited = await sam.room_invite(synapse_room, alice.user_id)
        assert not hasattr(invited, "status_code"), invited
        await sync_until(alice, lambda r: synapse_room in r.rooms.invite)
        joined = await alice.join(synapse_room)
        assert getattr(joined, "room_id", None) == synapse_room, joined
        await send(alice, synapse_room, "knock knock, I'm in")
        await messages_until(sam, synapse_room, ["knock knock, I'm in"])
    finally:
        await alice.close()
        await sam.close()


async def test_spaces_are_walked_across_servers(hearth, synapse):
    """Each side lists a space whose rooms live on the other server (federation /hierarchy)."""
    alice = await user(hearth.base_url, hearth.server_name, "alice")
    sam = await user(synapse.base_url, synapse.server_name, "sam")
    try:
        # A space on Synapse with a room on Synapse; Alice joins the space, Hearth asks Synapse
        # for the room.
        created = await sam.room_create(name="Synapse space", visibility=RoomVisibility.public,
                                        space=True)
        synapse_space = created.room_id
        created = await sam.room_create(name="Synapse room", visibility=RoomVisibility.public)
        synapse_room = created.room_id
        await sam.room_put_state(synapse_space, "m.space.child", {"via": [synapse.server_name]},
                                 state_key=synapse_room)
        join_via(alice, synapse_space, synapse.server_name)
        path = f"/_matrix/client/v1/rooms/{urllib.parse.quote(synapse_space, safe='')}/hierarchy"
        listed = get_json(alice, path)
        assert [room.get("name") for room in listed["rooms"]] == ["Synapse space", "Synapse room"], listed

        # A space on Hearth with a room on Hearth; Sam joins the space, Synapse asks Hearth.
        created = await alice.room_create(name="Hearth space", visibility=RoomVisibility.public,
                                          space=True)
        hearth_space = created.room_id
        created = await alice.room_create(name="Hearth room", visibility=RoomVisibility.public)
        hearth_room = created.room_id
        await alice.room_put_state(hearth_space, "m.space.child", {"via": [hearth.server_name]},
                                   state_key=hearth_room)
        join_via(sam, hearth_space, hearth.server_name)
        path = f"/_matrix/client/v1/rooms/{urllib.parse.quote(hearth_space, safe='')}/hierarchy"
        listed = get_json(sam, path)
        assert [room.get("name") for room in listed["rooms"]] == ["Hearth space", "Hearth room"], listed
    finally:
        await alice.close()
        await sam.close()


async def test_messages_sent_while_hearth_was_down_all_arrive(hearth, synapse):
    """Synapse catches up a peer it could not reach before it restarted with each room's newest
    event only; Hearth fetches the ones before it (POST /get_missing_events), so none is lost."""
    alice = await user(hearth.base_url, hearth.server_name, "alice")
    sam = await user(synapse.base_url, synapse.server_name, "sam")
    try:
        created = await alice.room_create(name="Outage", visibility=RoomVisibility.public)
        room_id = created.room_id
        join_via(sam, room_id, hearth.server_name)
        await send(sam, room_id, "before the outage")
        await messages_until(alice, room_id, ["before the outage"])

        # Hearth stops; Sam sends ten messages that Synapse cannot deliver; Synapse restarts
        # (forgetting its queue), then Hearth comes back.
        hearth.process.terminate()
        hearth.process.wait(timeout=15)
        away = [f"while Hearth was away {i}" for i in range(10)]
        for body in away:
            await send(sam, room_id, body)
        synapse.stop()
        synapse.start()
        restart_server(hearth)
        await alice.close()
        alice = restored(alice, hearth.base_url)

        # Alice speaks: Synapse hears from Hearth, retries it at once and catches it up.
        await send(alice, room_id, "I'm back")
        seen = await messages_until(alice, room_id, away, seconds=90)
        assert [body for body in seen if body in away] == away, seen
    finally:
        await alice.close()
        await sam.close()


async def test_a_synapse_room_is_left_and_rejoined(hearth, synapse):
    """Alice (Hearth) leaves a Synapse room, it changes while she is away, she rejoins and sees
    it as it is now, and messages flow again both ways."""
    alice = await user(hearth.base_url, hearth.server_name, "alice")
    sam = await user(synapse.base_url, synapse.server_name, "sam")
    try:
        created = await sam.room_create(name="Before", visibility=RoomVisibility.public)
        room_id = created.room_id
        join_via(alice, room_id, synapse.server_name)
        left = await alice.room_leave(room_id)
        assert not hasattr(left, "status_code"), left
        await membership_becomes(sam, room_id, alice.user_id, "leave")
        await sam.room_put_state(room_id, "m.room.name", {"name": "After"})
        await send(sam, room_id, "while you were out")

        join_via(alice, room_id, synapse.server_name)
        name = await alice.room_get_state_event(room_id, "m.room.name")
        assert getattr(name, "content", {}).get("name") == "After", name
        await send(sam, room_id, "welcome back")
        await messages_until(alice, room_id, ["welcome back"])
        await sam.sync(timeout=0)
        await send(alice, room_id, "good to be back")
        await messages_until(sam, room_id, ["good to be back"])
    finally:
        await alice.close()
        await sam.close()


async def test_older_room_versions_work_across_servers(hearth, synapse):
    """Rooms of versions before 10 (as old rooms on the network are) join and carry messages
    both ways: a v9 room on Synapse, a v5 room on Hearth, and v2 and v1 rooms on each side —
    their events carry ids their server chose and cite other events with their hashes. The guest
    deletes its reply, and the owner's server shows it redacted."""
    alice = await user(hearth.base_url, hearth.server_name, "alice")
    sam = await user(synapse.base_url, synapse.server_name, "sam")
    try:
        await alice.sync(timeout=0)
        await sam.sync(timeout=0)
        cases = ((sam, alice, synapse, "9"), (alice, sam, hearth, "5"), (sam, alice, synapse, "2"),
                 (alice, sam, hearth, "2"), (sam, alice, synapse, "1"), (alice, sam, hearth, "1"))
        for owner, guest, guest_server, version in cases:
            created = await owner.room_create(name=f"Version {version}", visibility=RoomVisibility.public,
                                              room_version=version)
            room_id = created.room_id
            join_via(guest, room_id, guest_server.server_name)
            await send(owner, room_id, f"hello in v{version}")
            await messages_until(guest, room_id, [f"hello in v{version}"])
            reply = await guest.room_send(room_id, "m.room.message",
                                          {"msgtype": "m.text", "body": f"reply in v{version}"})
            assert getattr(reply, "event_id", None), reply
            if version in ("1", "2"):
                assert reply.event_id.endswith(":" + (hearth if guest is alice else synapse).server_name), reply
            await messages_until(owner, room_id, [f"reply in v{version}"])
            assert getattr(await guest.room_redact(room_id, reply.event_id), "event_id", None)
            path = (f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/event/"
                    f"{urllib.parse.quote(reply.event_id, safe='')}")
            deadline = time.monotonic() + 60
            while get_json(owner, path)["content"] != {}:
                assert time.monotonic() < deadline, f"v{version}: the redaction never arrived"
                await asyncio.sleep(0.2)
    finally:
        await alice.close()
        await sam.close()


def room_name(client, room_id):
    return get_json(client, f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/state/m.room.name/")["name"]


def holds_event(client, room_id, event_id):
    try:
        get_json(client, f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id, safe='')}/event/"
                         f"{urllib.parse.quote(event_id, safe='')}")
        return True
    except urllib.error.HTTPError:
        return False


@pytest.mark.parametrize("version", ["12", "1"])
async def test_concurrent_renames_on_both_servers_resolve_to_the_same_state(hearth, synapse, version):
    """The servers are cut off from each other in turn and the room is renamed on each side,
    Synapse first: two branches of the room's history. Once both are up, each takes in the other's
    rename, and state resolution makes both agree on Alice's — although on Hearth, Sam's rename
    is the one that arrives last. In v12 (the second algorithm) Alice's wins as the later one;
    in v1 (the first) as the deeper one: Alice said something on her branch before renaming."""
    alice = await user(hearth.base_url, hearth.server_name, "alice")
    sam = await user(synapse.base_url, synapse.server_name, "sam")
    try:
        created = await sam.room_create(name="Before", visibility=RoomVisibility.public, room_version=version)
        room_id = created.room_id
        join_via(alice, room_id, synapse.server_name)
        quoted = urllib.parse.quote(room_id, safe="")
        power = get_json(sam, f"/_matrix/client/v3/rooms/{quoted}/state/m.room.power_levels/")
        power.setdefault("users", {})[alice.user_id] = 50
        assert getattr(await sam.room_put_state(room_id, "m.room.power_levels", power), "event_id", None)
        await send(sam, room_id, "fork point")
        await messages_until(alice, room_id, ["fork point"])

        # Hearth is down: Sam renames the room on Synapse.
        hearth.process.terminate()
        hearth.process.wait(timeout=15)
        sams = await sam.room_put_state(room_id, "m.room.name", {"name": "Sam's name"})
        assert getattr(sams, "event_id", None), sams
        # Synapse is down, Hearth back: Alice renames it on Hearth, later.
        synapse.stop()
        restart_server(hearth)
        await alice.close()
        alice = restored(alice, hearth.base_url)
        assert room_name(alice, room_id) == "Before"
        await send(alice, room_id, "alone on Hearth")
        alices = await alice.room_put_state(room_id, "m.room.name", {"name": "Alice's name"})
        assert getattr(alices, "event_id", None), alices
        # Both up: each server takes in the other's rename and resolves.
        synapse.start()
        await sam.close()
        sam = restored(sam, synapse.base_url)
        await send(alice, room_id, "after the split")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if holds_event(alice, room_id, sams.event_id) and holds_event(sam, room_id, alices.event_id):
                break
            await asyncio.sleep(0.5)
        assert holds_event(alice, room_id, sams.event_id), "Sam's rename reached Hearth"
        assert holds_event(sam, room_id, alices.event_id), "Alice's rename reached Synapse"
        assert room_name(sam, room_id) == "Alice's name"
        assert room_name(alice, room_id) == "Alice's name"
        # And the room goes on across both: messages still flow each way.
        await send(sam, room_id, "agreed")
        await messages_until(alice, room_id, ["agreed"])
    finally:
        await alice.close()
        await sam.close()
