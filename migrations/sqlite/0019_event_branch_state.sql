-- The state an event from another branch of a room's history was sent in, where it differs from
-- the state this server recorded just before the event's position: each entry is
-- [type, state_key, event_id or null for absent]. State resolution and /state_ids read the
-- state before such an event from here, not from the room's linear state history (which holds
-- the resolved state from the event's position on).
CREATE TABLE event_branch_state (
    event_id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    delta TEXT NOT NULL
);
