-- Lists filter deployments on their service, env, team and version columns (sql.rs `list`),
-- which is exact for deployments without a custom tag of one of those keys: the first index
-- serves those filters and the sort by finished_at without reading rows. The few deployments
-- with such a tag are filtered on their attributes instead and found through the second index,
-- whose WHERE clause must stay exactly query_sql.rs `tag_guard` over sql.rs
-- `DEPLOYMENT_COLUMN_KEYS`, or the planner will not use it (a test checks).
CREATE INDEX deployments_by_service_env ON deployments (service, env, finished_at, team, version);
CREATE INDEX deployments_tagged_by_finished ON deployments (finished_at, pk)
    WHERE (instr(custom_tags, '"service:') > 0 OR instr(custom_tags, '"env:') > 0 OR instr(custom_tags, '"team:') > 0 OR instr(custom_tags, '"version:') > 0);
