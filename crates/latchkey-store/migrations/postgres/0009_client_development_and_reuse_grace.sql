-- Per-client opt-ins that weaken a secure default, each off unless set:
-- a development client may register plain-http redirect URIs on localhost, 127.0.0.1 and
-- [::1]; a client may keep its refresh-token family alive when a rotated token comes back
-- within this many seconds (NULL: tokens.refresh_reuse_grace, by default 0: revoke).
ALTER TABLE clients ADD COLUMN allow_insecure_redirect_uris BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN refresh_reuse_grace BIGINT;
