DROP TABLE api_keys;
-- Removed accounts must not come back to life with their old password: rename them and
-- make their password unusable ('*' is no bcrypt hash, so no password matches it).
UPDATE accounts SET username = 'removed-' || id, password_hash = '*'
    WHERE deleted_at IS NOT NULL;
DROP INDEX accounts_live_username_key;
ALTER TABLE accounts ADD CONSTRAINT accounts_username_key UNIQUE (username);
ALTER TABLE accounts DROP COLUMN deleted_at;
ALTER TABLE accounts DROP COLUMN role;
