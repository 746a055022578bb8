-- Whether a room's state changed after a position (an event from another branch of the room's
-- history needs state resolution only if it did).
CREATE INDEX room_state_by_position ON room_state (room_id, from_stream);
