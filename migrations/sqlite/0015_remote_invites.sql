-- Invites from rooms this server is not in: the stripped state the inviting server sent with the
-- invite (shown to the invitee, who cannot see the room yet), and the room's version for the
-- join that may follow. The invite event itself is in `events`, the invitee's membership in
-- `room_memberships`.
CREATE TABLE remote_invites (
    room_id        TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    room_version   TEXT NOT NULL,
    invite_state   TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
