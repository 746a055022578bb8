-- Other servers' signing keys (spec: Server-Server API § Retrieving server keys), fetched from
-- the server itself or through a notary. `document` is the signed key response the key came in,
-- kept verbatim so this server can serve it again as a notary (/_matrix/key/v2/query).
-- `expired_ts` is set for keys listed in old_verify_keys: they verify only what was signed
-- before then.
CREATE TABLE remote_server_keys (
    server_name     TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    public_key      TEXT NOT NULL,
    valid_until_ts  BIGINT NOT NULL,
    expired_ts      BIGINT,
    document        TEXT NOT NULL,
    fetched_ts      BIGINT NOT NULL,
    PRIMARY KEY (server_name, key_id)
);
