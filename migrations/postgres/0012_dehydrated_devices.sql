-- Dehydrated devices (MSC3814): at most one per user, a device with no access token whose
-- encrypted state (`device_data`, opaque to the server) a new login can take over.
CREATE TABLE dehydrated_devices (
    user_id      TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL,
    device_data  TEXT NOT NULL
);
