DROP FUNCTION IF EXISTS segsvc_rollout_bucket(text, bigint);
DROP TABLE IF EXISTS membership_history;
DROP TABLE IF EXISTS memberships;
DROP TABLE IF EXISTS segments;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS accounts;
