-- The failure a mark was made for, when a failure's put made it (NULL: any other write). A
-- stream whose marks all name failures has current facts but for those failures: a refresh
-- blames each on its deployment by look-ups instead of re-deriving the stream.
ALTER TABLE dirty_streams ADD COLUMN failure_id TEXT;
