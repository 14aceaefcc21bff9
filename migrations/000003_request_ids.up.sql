-- Request ids (AIP-155): the first response to a retried mutating request, kept 24 h.
-- Keyed by the caller's account: two accounts never see each other's responses.
CREATE TABLE request_ids (
    account_id  bigint NOT NULL,
    request_id  uuid NOT NULL,
    -- SHA-256 of the method and the request without its request_id: the same id sent
    -- with a different request is refused instead of answered with the first response.
    fingerprint bytea NOT NULL,
    -- The serialized response; written in the transaction that made the change.
    response    bytea,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (account_id, request_id)
);
-- The purge of ids older than 24 h.
CREATE INDEX request_ids_created_at_idx ON request_ids (created_at);
