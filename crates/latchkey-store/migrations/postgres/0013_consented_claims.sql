-- The individual claims (OIDC Core §5.5) a user allowed a client beyond the scopes they
-- allowed it: a JSON list of claim names, like `scopes`. Consents given before this have
-- none.
ALTER TABLE consents ADD COLUMN claims TEXT NOT NULL DEFAULT '[]';
