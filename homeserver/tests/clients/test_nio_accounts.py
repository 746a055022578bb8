"""Accounts, profile and devices driven by matrix-nio, a Matrix client nobody here wrote,
against the running `hearth` binary. matrix-nio has no API for refresh tokens or password
changes, so those steps go through nio's own authenticated `send` and the results are then
checked with nio's typed calls."""

import json

from nio import AsyncClient
from nio.responses import (
    DeleteDevicesAuthResponse,
    DeleteDevicesResponse,
    DevicesResponse,
    LoginError,
    LoginResponse,
    LogoutResponse,
    ProfileGetResponse,
    RegisterErrorResponse,
    RegisterResponse,
    UpdateDeviceResponse,
    WhoamiError,
    WhoamiResponse,
)

PASSWORD = "correct horse battery"
NEW_PASSWORD = "a whole new staple"


async def raw(client, method, path, body=None):
    """A request through nio's session and access token; returns (status, JSON body)."""
    headers = {"Authorization": f"Bearer {client.access_token}"} if client.access_token else {}
    response = await client.send(method, path, json.dumps(body) if body is not None else None, headers)
    return response.status, await response.json()


def restored(base_url, user_id, device_id, token):
    client = AsyncClient(base_url, user_id)
    client.restore_login(user_id, device_id, token)
    return client


async def test_an_account_lives_its_whole_life_through_matrix_nio(server):
    laptop = AsyncClient(server.base_url, "alice")
    phone = AsyncClient(server.base_url, "@alice:localhost")
    extra = None
    try:
        # Register: nio sends m.login.dummy in its very first request.
        registered = await laptop.register("alice", PASSWORD, device_name="nio laptop")
        assert isinstance(registered, RegisterResponse), registered
        assert registered.user_id == "@alice:localhost"
        whoami = await laptop.whoami()
        assert isinstance(whoami, WhoamiResponse) and whoami.user_id == "@alice:localhost"
        assert whoami.device_id == registered.device_id

        # Log in from a second device.
        login = await phone.login(PASSWORD, device_name="nio phone")
        assert isinstance(login, LoginResponse), login
        assert login.device_id != registered.device_id

        # Profile.
        assert (await laptop.set_displayname("Alice Liddell")).transport_response.status == 200
        assert (await laptop.set_avatar("mxc://localhost/rabbitHole1")).transport_response.status == 200
        profile = await phone.get_profile("@alice:localhost")
        assert isinstance(profile, ProfileGetResponse), profile
        assert profile.displayname == "Alice Liddell"
        assert profile.avatar_url == "mxc://localhost/rabbitHole1"
        assert (await phone.get_displayname()).displayname == "Alice Liddell"

        # Devices: list and rename.
        devices = await laptop.devices()
        assert isinstance(devices, DevicesResponse), devices
        names = {d.id: d.display_name for d in devices.devices}
        assert names == {registered.device_id: "nio laptop", login.device_id: "nio phone"}
        renamed = await laptop.update_device(login.device_id, {"display_name": "old phone"})
        assert isinstance(renamed, UpdateDeviceResponse), renamed
        names = {d.id: d.display_name for d in (await phone.devices()).devices}
        assert names[login.device_id] == "old phone"

        # Refresh tokens: log in asking for one, refresh, and the used one stops working.
        status, session = await raw(
            laptop,
            "POST",
            "/_matrix/client/v3/login",
            {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"},
             "password": PASSWORD, "refresh_token": True, "initial_device_display_name": "nio tablet"},
        )
        assert status == 200 and session["expires_in_ms"] > 0, session
        extra = restored(server.base_url, session["user_id"], session["device_id"], session["access_token"])
        assert isinstance(await extra.whoami(), WhoamiResponse)
        status, refreshed = await raw(extra, "POST", "/_matrix/client/v3/refresh", {"refresh_token": session["refresh_token"]})
        assert status == 200, refreshed
        old_token = extra.access_token
        extra.access_token = refreshed["access_token"]
        whoami = await extra.whoami()
        assert isinstance(whoami, WhoamiResponse) and whoami.device_id == session["device_id"]
        stale = restored(server.base_url, session["user_id"], session["device_id"], old_token)
        rejected = await stale.whoami()
        assert isinstance(rejected, WhoamiError) and rejected.status_code == "M_UNKNOWN_TOKEN"
        await stale.close()
        status, reused = await raw(extra, "POST", "/_matrix/client/v3/refresh", {"refresh_token": session["refresh_token"]})
        assert status == 401 and reused["errcode"] == "M_UNKNOWN_TOKEN", reused

        # Delete the tablet with nio's own user-interactive flow.
        first = await laptop.delete_devices([session["device_id"]])
        assert isinstance(first, DeleteDevicesAuthResponse), first
        auth = {"type": "m.login.password", "user": "@alice:localhost", "password": PASSWORD, "session": first.session}
        deleted = await laptop.delete_devices([session["device_id"]], auth=auth)
        assert isinstance(deleted, DeleteDevicesResponse), deleted
        assert isinstance(await extra.whoami(), WhoamiError)

        # Change the password (UIA m.login.password): the phone is logged out, the laptop stays.
        status, challenge = await raw(laptop, "POST", "/_matrix/client/v3/account/password", {"new_password": NEW_PASSWORD})
        assert status == 401 and challenge["flows"] == [{"stages": ["m.login.password"]}], challenge
        status, body = await raw(
            laptop,
            "POST",
            "/_matrix/client/v3/account/password",
            {"new_password": NEW_PASSWORD, "auth": {"type": "m.login.password", "session": challenge["session"],
                                                    "identifier": {"type": "m.id.user", "user": "alice"},
                                                    "password": PASSWORD}},
        )
        assert status == 200, body
        assert isinstance(await laptop.whoami(), WhoamiResponse)
        logged_out = await phone.whoami()
        assert isinstance(logged_out, WhoamiError) and logged_out.status_code == "M_UNKNOWN_TOKEN"
        retry = AsyncClient(server.base_url, "alice")
        old_password = await retry.login(PASSWORD)
        assert isinstance(old_password, LoginError) and old_password.status_code == "M_FORBIDDEN"
        new_password = await retry.login(NEW_PASSWORD, device_name="after change")
        assert isinstance(new_password, LoginResponse), new_password
        await retry.close()

        # Log out: the old token is rejected afterwards.
        token = laptop.access_token
        assert isinstance(await laptop.logout(), LogoutResponse)
        ghost = restored(server.base_url, "@alice:localhost", registered.device_id, token)
        gone = await ghost.whoami()
        assert isinstance(gone, WhoamiError) and gone.status_code == "M_UNKNOWN_TOKEN"
        await ghost.close()
    finally:
        for client in (laptop, phone, extra):
            if client is not None:
                await client.close()
    # Nothing secret reached the server's log.
    log = server.log_text()
    for secret in (PASSWORD, NEW_PASSWORD, token, session["refresh_token"], refreshed["access_token"]):
        assert secret not in log


async def test_registration_errors_reach_matrix_nio_as_matrix_errors(server):
    alice = AsyncClient(server.base_url, "alice")
    bob = AsyncClient(server.base_url, "alice")
    try:
        assert isinstance(await alice.register("alice", PASSWORD), RegisterResponse)
        taken = await bob.register("alice", PASSWORD)
        assert isinstance(taken, RegisterErrorResponse) and taken.status_code == "M_USER_IN_USE"
        invalid = await bob.register("not valid!", PASSWORD)
        assert isinstance(invalid, RegisterErrorResponse) and invalid.status_code == "M_INVALID_USERNAME"
        weak = await bob.register("bob", "short")
        assert isinstance(weak, RegisterErrorResponse) and weak.status_code == "M_WEAK_PASSWORD"
        wrong = await bob.login("wrong password")
        assert isinstance(wrong, LoginError) and wrong.status_code == "M_FORBIDDEN"
    finally:
        await alice.close()
        await bob.close()


async def test_matrix_nio_registers_with_a_registration_token(make_server):
    server = make_server({"HEARTH_REGISTRATION__MODE": "token", "HEARTH_REGISTRATION__TOKENS": '["invite-2026"]'})
    client = AsyncClient(server.base_url, "carol")
    try:
        refused = await client.register_with_token("carol", PASSWORD, "not-the-token")
        assert isinstance(refused, RegisterErrorResponse), refused
        plain = await client.register("carol", PASSWORD)
        assert isinstance(plain, RegisterErrorResponse), "dummy auth alone is not enough in token mode"
        accepted = await client.register_with_token("carol", PASSWORD, "invite-2026", device_name="nio")
        assert isinstance(accepted, RegisterResponse), accepted
        assert accepted.user_id == "@carol:localhost"
        assert isinstance(await client.whoami(), WhoamiResponse)
    finally:
        await client.close()
    assert "invite-2026" not in server.log_text()
