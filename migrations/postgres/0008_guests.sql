-- Guest accounts (spec: Client-Server API § Guest access): registered with kind=guest, no
-- password, limited to the endpoints the spec lists until upgraded to a full account.
ALTER TABLE users ADD COLUMN is_guest BIGINT NOT NULL DEFAULT 0;
