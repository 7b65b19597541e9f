-- Metrics of a team find its deployments through this index (instead of reading them all).
CREATE INDEX deployments_by_team ON deployments (team, finished_at);
-- Facts selected by tier and by a query on the deployments are matched on their id: kept in
-- the index, so only the matching facts are read.
DROP INDEX deployment_facts_by_tier;
CREATE INDEX deployment_facts_by_tier ON deployment_facts (tier, finished_at, id);
