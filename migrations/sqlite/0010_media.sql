-- The media repository (issue 4): one row per file, local or cached from another server.
CREATE TABLE media (
    origin             TEXT NOT NULL,
    media_id           TEXT NOT NULL,
    -- The local user who uploaded (or reserved) it; NULL for remote media.
    uploader           TEXT,
    content_type       TEXT NOT NULL,
    file_name          TEXT,
    -- NULL until the bytes arrive (an async upload reserved with POST /create).
    size_bytes         BIGINT,
    sha256             TEXT,
    created_ts         BIGINT NOT NULL,
    uploaded_ts        BIGINT,
    -- An async upload not done by then is dropped.
    unused_expires_ts  BIGINT,
    last_access_ts     BIGINT,
    quarantined        BIGINT NOT NULL DEFAULT 0,
    -- Unreachable since (every message carrying it was deleted, or an admin deleted it); the
    -- bytes go after the grace period.
    deleted_ts         BIGINT,
    -- The bytes are gone from the store.
    purged             BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (origin, media_id)
);
CREATE INDEX media_by_uploader ON media (uploader, uploaded_ts);
CREATE INDEX media_by_deleted ON media (deleted_ts);

-- Thumbnails generated from a file, reused for every request of the same size and method.
CREATE TABLE media_thumbnails (
    origin        TEXT NOT NULL,
    media_id      TEXT NOT NULL,
    width         BIGINT NOT NULL,
    height        BIGINT NOT NULL,
    method        TEXT NOT NULL,
    animated      BIGINT NOT NULL,
    content_type  TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    PRIMARY KEY (origin, media_id, width, height, method, animated)
);

-- Which events (and profiles) use which media: media stays while anything refers to it.
CREATE TABLE media_references (
    origin    TEXT NOT NULL,
    media_id  TEXT NOT NULL,
    -- An event id, or `profile:<user id>` for an avatar.
    holder    TEXT NOT NULL,
    room_id   TEXT,
    PRIMARY KEY (origin, media_id, holder)
);
CREATE INDEX media_references_by_holder ON media_references (holder);
