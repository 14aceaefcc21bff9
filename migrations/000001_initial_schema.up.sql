-- segsvc initial schema.
-- Conventions: end-user id is the leading column of every membership and history key
-- (so the tables can later be distributed by user id); the read path is
-- memberships(user_id, ...) -> segments(id), both primary-key lookups.

CREATE TABLE accounts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    username      text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9._-]{3,64}$'),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    user_id    bigint PRIMARY KEY CHECK (user_id > 0),
    created_at timestamptz NOT NULL
);

CREATE TABLE segments (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug         text NOT NULL CHECK (slug ~ '^[A-Z0-9_]{1,64}$'),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    -- Percentage rollout in basis points (1..10000 = 0.01 %..100 %), NULL without rollout.
    rollout_bp   integer CHECK (rollout_bp BETWEEN 1 AND 10000),
    rollout_salt text,
    created_at   timestamptz NOT NULL,
    created_by   bigint REFERENCES accounts (id),
    -- Deleted segments stay as rows so history keeps its meaning; their slug is free again.
    deleted_at   timestamptz,
    CHECK ((rollout_bp IS NULL) = (rollout_salt IS NULL))
);
CREATE UNIQUE INDEX segments_live_slug_key ON segments (slug) WHERE deleted_at IS NULL;
CREATE INDEX segments_live_rollout_idx ON segments (id)
    WHERE deleted_at IS NULL AND rollout_bp IS NOT NULL;

CREATE TABLE memberships (
    user_id    bigint NOT NULL REFERENCES users (user_id),
    segment_id bigint NOT NULL REFERENCES segments (id),
    added_at   timestamptz NOT NULL,
    -- NULL: no expiry. A row whose expires_at has passed is inactive at once; the
    -- expiry sweeper moves it to history later.
    expires_at timestamptz,
    reason     text NOT NULL CHECK (reason IN ('manual', 'rollout')),
    PRIMARY KEY (user_id, segment_id)
) WITH (fillfactor = 90);
-- Member counts and ListSegmentUsers: index-only scans by segment.
CREATE INDEX memberships_segment_idx ON memberships (segment_id, user_id) INCLUDE (expires_at);
-- The expiry sweeper.
CREATE INDEX memberships_expiry_idx ON memberships (expires_at) WHERE expires_at IS NOT NULL;

-- Append-only: one row per change of a membership, written in the transaction of the change.
CREATE TABLE membership_history (
    user_id    bigint NOT NULL,
    id         bigint GENERATED ALWAYS AS IDENTITY,
    segment_id bigint NOT NULL,
    -- The slug as it was when the change happened.
    slug       text NOT NULL,
    -- 'update' changes only the expiry of an active membership; reports show add/remove.
    operation  text NOT NULL CHECK (operation IN ('add', 'remove', 'update')),
    reason     text NOT NULL
        CHECK (reason IN ('manual', 'rollout', 'expired', 'segment_deleted')),
    at         timestamptz NOT NULL,
    -- For add/update: the membership's expiry from then on.
    expires_at timestamptz,
    -- Account that made the change; NULL for the system (expiry).
    account_id bigint,
    PRIMARY KEY (user_id, id)
);
-- "What were user U's segments at T" reads one user's events.
CREATE INDEX membership_history_user_at_idx ON membership_history (user_id, at);
-- Monthly reports scan a time range; history is appended in (almost) time order, so a
-- BRIN index is tiny and enough.
CREATE INDEX membership_history_at_brin ON membership_history USING brin (at);

-- Rollout bucket of a user for a segment salt: the first 60 bits of
-- SHA-256("<salt>:<user_id>") modulo 10000. Mirrored by segsvc.domain.rollout.bucket.
CREATE FUNCTION segsvc_rollout_bucket(salt text, user_id bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (('x' || left(encode(sha256(convert_to(salt || ':' || user_id::text, 'UTF8')), 'hex'), 15))::bit(60)::bigint % 10000)::integer;
