-- A queued message names its recipient by a keyed hash (the address itself is sealed), so
-- erasing a person can drop the messages still waiting for them.
ALTER TABLE outbox ADD COLUMN recipient_hash TEXT;
CREATE INDEX outbox_by_recipient ON outbox (tenant_id, recipient_hash);
