"""Media through matrix-nio against the running `hearth` binary: a profile picture another user
sees and downloads; a group picture; a real PNG photo and a real MP4 video (made here with Pillow and ffmpeg) sent
to a DM and to a group, which every recipient downloads byte for byte with thumbnails of the
size asked for; and a redacted photo whose download is refused once no message uses it."""

import io
import os
import shutil
import subprocess
import tempfile

import pytest
from nio import ResizingMethod, RoomPreset
from nio.events.room_events import RoomMessageImage, RoomMessageVideo
from nio.responses import (
    DownloadError,
    JoinResponse,
    MemoryDownloadResponse,
    ProfileGetResponse,
    ProfileSetAvatarResponse,
    RoomCreateResponse,
    RoomPutStateResponse,
    RoomRedactResponse,
    RoomSendResponse,
    ThumbnailResponse,
    UploadResponse,
)
from PIL import Image

from nio_helpers import close_all, registered, sync_until

REQUIRE_FFMPEG = os.environ.get("HEARTH_TEST_REQUIRE_FFMPEG") == "1"


def photo_png(width, height, shade):
    """A real PNG with a gradient, so scaling has something to scale."""
    image = Image.new("RGB", (width, height))
    image.putdata([((x * 255) // width, (y * 255) // height, shade) for y in range(height) for x in range(width)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def video_mp4():
    """A one-second 320x240 H.264 MP4 from ffmpeg's test source, or None without ffmpeg."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        if REQUIRE_FFMPEG:
            pytest.fail("ffmpeg is required (HEARTH_TEST_REQUIRE_FFMPEG=1) but not installed")
        return None
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "clip.mp4")
        subprocess.run(
            [ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", "1",
             "-pix_fmt", "yuv420p", "-c:v", "libx264", "-movflags", "+faststart", path],
            check=True,
            timeout=60,
        )
        with open(path, "rb") as clip:
            return clip.read()


async def upload(client, data, content_type, filename):
    response, keys = await client.upload(io.BytesIO(data), content_type=content_type, filename=filename, filesize=len(data))
    assert isinstance(response, UploadResponse), response
    assert keys is None
    return response.content_uri


def mxc_parts(uri):
    server_name, media_id = uri.removeprefix("mxc://").split("/", 1)
    return server_name, media_id


async def downloaded(client, uri):
    response = await client.download(mxc=uri)
    assert isinstance(response, MemoryDownloadResponse), response
    return response


async def thumbnail_size(client, uri, width, height, method):
    server_name, media_id = mxc_parts(uri)
    response = await client.thumbnail(server_name, media_id, width, height, method=method)
    assert isinstance(response, ThumbnailResponse), response
    assert response.content_type in ("image/png", "image/jpeg", "image/webp", "image/gif"), response.content_type
    return Image.open(io.BytesIO(response.body)).size


async def joined_room(creator, invitees, **options):
    created = await creator.room_create(invite=[c.user_id for c in invitees], **options)
    assert isinstance(created, RoomCreateResponse), created
    for invitee in invitees:
        await sync_until(invitee, lambda r: created.room_id in r.rooms.invite)
        assert isinstance(await invitee.join(created.room_id), JoinResponse)
    return created.room_id


def media_events(response, room_id, kind):
    room = response.rooms.join.get(room_id)
    return [e for e in room.timeline.events if isinstance(e, kind)] if room else []


async def test_a_profile_picture_is_seen_by_another_user(server):
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    try:
        avatar = photo_png(256, 256, 90)
        uri = await upload(alice, avatar, "image/png", "me.png")
        assert isinstance(await alice.set_avatar(uri), ProfileSetAvatarResponse)

        profile = await bob.get_profile("@alice:localhost")
        assert isinstance(profile, ProfileGetResponse), profile
        assert profile.avatar_url == uri
        fetched = await downloaded(bob, profile.avatar_url)
        assert fetched.body == avatar and fetched.content_type == "image/png"
        assert await thumbnail_size(bob, uri, 96, 96, ResizingMethod.crop) == (96, 96)
    finally:
        await close_all(alice, bob)


async def test_photos_and_videos_reach_a_dm_and_a_group(server):
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    carol = await registered(server, "carol")
    try:
        dm = await joined_room(alice, [bob], is_direct=True, preset=RoomPreset.trusted_private_chat)
        group = await joined_room(alice, [bob, carol], name="Holiday", preset=RoomPreset.private_chat)
        clip = video_mp4()

        # The group's picture: set by its admin, seen and downloaded by the members.
        picture = photo_png(200, 200, 200)
        picture_uri = await upload(alice, picture, "image/png", "group.png")
        assert isinstance(await alice.room_put_state(group, "m.room.avatar", {"url": picture_uri}), RoomPutStateResponse)
        for member in (bob, carol):
            await sync_until(member, lambda r: member.rooms[group].room_avatar_url == picture_uri)
            assert (await downloaded(member, member.rooms[group].room_avatar_url)).body == picture

        for room_id, recipients in ((dm, [bob]), (group, [bob, carol])):
            photo = photo_png(1024, 768, len(recipients) * 60)
            photo_uri = await upload(alice, photo, "image/png", "beach.png")
            sent = await alice.room_send(room_id, "m.room.message", {
                "msgtype": "m.image", "body": "beach.png", "url": photo_uri,
                "info": {"mimetype": "image/png", "w": 1024, "h": 768, "size": len(photo)},
            })
            assert isinstance(sent, RoomSendResponse), sent
            video_uri = None
            if clip is not None:
                video_uri = await upload(alice, clip, "video/mp4", "clip.mp4")
                sent = await alice.room_send(room_id, "m.room.message", {
                    "msgtype": "m.video", "body": "clip.mp4", "url": video_uri,
                    "info": {"mimetype": "video/mp4", "w": 320, "h": 240, "duration": 1000, "size": len(clip)},
                })
                assert isinstance(sent, RoomSendResponse), sent

            for recipient in recipients:
                response = await sync_until(recipient, lambda r: media_events(r, room_id, RoomMessageImage))
                image = media_events(response, room_id, RoomMessageImage)[0]
                assert image.url == photo_uri and image.sender == "@alice:localhost"
                assert (await downloaded(recipient, image.url)).body == photo
                assert await thumbnail_size(recipient, image.url, 96, 96, ResizingMethod.crop) == (96, 96)
                assert await thumbnail_size(recipient, image.url, 320, 240, ResizingMethod.scale) == (320, 240)
                if clip is None:
                    continue
                if not media_events(response, room_id, RoomMessageVideo):
                    response = await sync_until(recipient, lambda r: media_events(r, room_id, RoomMessageVideo))
                video = media_events(response, room_id, RoomMessageVideo)[0]
                assert video.url == video_uri
                fetched = await downloaded(recipient, video.url)
                assert fetched.body == clip and fetched.content_type == "video/mp4"
                # The video's first frame, scaled to fit the size asked for.
                assert await thumbnail_size(recipient, video.url, 96, 96, ResizingMethod.crop) == (96, 96)
        if clip is None:
            pytest.skip("ffmpeg is not installed: the m.video half of this scenario did not run")
    finally:
        await close_all(alice, bob, carol)


async def test_a_redacted_photo_cannot_be_downloaded(server):
    alice = await registered(server, "alice")
    bob = await registered(server, "bob")
    try:
        dm = await joined_room(alice, [bob], is_direct=True, preset=RoomPreset.trusted_private_chat)
        group = await joined_room(alice, [bob], preset=RoomPreset.private_chat)
        photo = photo_png(300, 200, 10)
        uri = await upload(alice, photo, "image/png", "oops.png")
        content = {"msgtype": "m.image", "body": "oops.png", "url": uri, "info": {"mimetype": "image/png"}}
        in_group = await alice.room_send(group, "m.room.message", content)
        in_dm = await alice.room_send(dm, "m.room.message", content)
        await sync_until(bob, lambda r: media_events(r, dm, RoomMessageImage) or media_events(r, group, RoomMessageImage))
        assert (await downloaded(bob, uri)).body == photo

        # Deleted in the group, the photo is still in the DM: still there for both.
        assert isinstance(await alice.room_redact(group, in_group.event_id, reason="wrong chat"), RoomRedactResponse)
        assert (await downloaded(bob, uri)).body == photo

        # Deleted everywhere: nobody can fetch it any more, not even the sender.
        assert isinstance(await alice.room_redact(dm, in_dm.event_id), RoomRedactResponse)
        for client in (bob, alice):
            refused = await client.download(mxc=uri)
            assert isinstance(refused, DownloadError), refused
            assert refused.status_code == "M_NOT_FOUND", refused
            server_name, media_id = mxc_parts(uri)
            thumb = await client.thumbnail(server_name, media_id, 32, 32, method=ResizingMethod.crop)
            assert not isinstance(thumb, ThumbnailResponse), thumb
    finally:
        await close_all(alice, bob)
