-- Retention of accounts ([retention] inactive_accounts, unverified_sign_ups).
-- When the account last signed in (a session started or re-authenticated; to the hour).
-- Its sessions used, tokens refreshed and API keys used count too: the retention job reads
-- those from their own tables. Accounts that existed before count from this upgrade: nothing was kept earlier.
ALTER TABLE users ADD COLUMN last_active_at BIGINT NOT NULL DEFAULT 0;
UPDATE users SET last_active_at = CAST(strftime('%s', 'now') AS BIGINT);
-- When the owner was told the account will be disabled or deleted for lack of use.
ALTER TABLE users ADD COLUMN inactivity_notice_at BIGINT;
-- Created by sign-up with an address that has not been verified since.
ALTER TABLE users ADD COLUMN unverified_sign_up BOOLEAN NOT NULL DEFAULT FALSE;
-- What the retention job reads, in its order; service accounts and locked accounts stay
-- out of it, however long they go unused.
CREATE INDEX users_by_last_active ON users (last_active_at, tenant_id, sub) WHERE NOT locked AND NOT service_account;
CREATE INDEX users_unverified_sign_ups ON users (created_at, tenant_id, sub) WHERE unverified_sign_up;
