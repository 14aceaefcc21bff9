-- Reverts 000003: drops the remembered responses of retried requests.
DROP TABLE request_ids;
