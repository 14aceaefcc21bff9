-- Access control (issue 9): account roles, removable accounts, API keys.

-- Accounts made before roles could do everything with data, which is what `writer`
-- allows; admin is new, so nobody gets it silently: an operator grants it with
-- `segsvc accounts create --role admin`.
ALTER TABLE accounts
    ADD COLUMN role text NOT NULL DEFAULT 'writer' CHECK (role IN ('reader', 'writer', 'admin'));
ALTER TABLE accounts ALTER COLUMN role DROP DEFAULT;

-- Removed accounts stay as rows, so history and segments.created_by keep pointing at a
-- real account; their username is free again.
ALTER TABLE accounts ADD COLUMN deleted_at timestamptz;
ALTER TABLE accounts DROP CONSTRAINT accounts_username_key;
CREATE UNIQUE INDEX accounts_live_username_key ON accounts (username) WHERE deleted_at IS NULL;

CREATE TABLE api_keys (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role       text NOT NULL CHECK (role IN ('reader', 'writer', 'admin')),
    -- SHA-256 of the key; the key itself is shown once and never stored.
    key_hash   bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    prefix     text NOT NULL,
    -- Calls made with the key act as this account (history records it).
    created_by bigint NOT NULL REFERENCES accounts (id),
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
