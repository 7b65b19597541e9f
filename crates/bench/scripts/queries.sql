-- The metric SQL both baselines run (PostgreSQL and DuckDB run this same text), in the style of
-- GitLab's, DevLake's and Four Keys' DORA queries: joins over the deployments, the shipped
-- commits of each deployment (`changes`, precomputed by the generator as those tools precompute
-- them in their ETL) and the failures, with exact medians and percentiles (percentile_cont).
--
-- `dora-bench run` splits this file at the `-- name:` lines and replaces each `{param}`
-- with a quoted SQL literal. Every query filters on the production tier: the default of the
-- GitLab and native APIs the benchmark compares them with.

-- name: list
-- POST /api/v2/dora/deployments: service:(a OR b) env:production -team:x, sort -finished_at,
-- limit 1000. `-team:x` also keeps deployments without a team, hence IS DISTINCT FROM.
SELECT id, CAST(finished_at AS VARCHAR) AS finished
FROM deployments
WHERE service IN ({service_a}, {service_b})
  AND env = 'production'
  AND team IS DISTINCT FROM {exclude_team}
ORDER BY finished_at DESC, id
LIMIT 1000;

-- name: group_lead_time_daily
-- GET /api/v4/groups/:id/dora/metrics?metric=lead_time_for_changes&interval=daily: per day,
-- the exact median of (deployment finish - committer time) over every commit the group's
-- production deployments of that day shipped first (not a median of medians).
SELECT CAST(CAST(date_trunc('day', d.finished_at) AS DATE) AS VARCHAR) AS day,
       CAST(percentile_cont(0.5) WITHIN GROUP (
           ORDER BY EXTRACT(EPOCH FROM (d.finished_at - c.committed_at))) AS DOUBLE PRECISION)
         AS median_seconds
FROM deployments d
JOIN changes c ON c.deployment_id = d.id
WHERE d.tier = 'production'
  AND d.project LIKE {group_like}
  AND d.finished_at >= CAST({from} AS TIMESTAMP)
  AND d.finished_at < CAST({to} AS TIMESTAMP)
GROUP BY 1
ORDER BY 1;

-- name: project_deployment_frequency_monthly
-- GET /api/v4/projects/:id/dora/metrics?metric=deployment_frequency&interval=monthly: per
-- month, production deployments per day of the month inside the range (GitLab >= 16.0).
SELECT CAST(CAST(date_trunc('month', finished_at) AS DATE) AS VARCHAR) AS month,
       count(*) AS deployments,
       CAST(count(*) AS DOUBLE PRECISION) / CAST(EXTRACT(EPOCH FROM (
           LEAST(date_trunc('month', finished_at) + INTERVAL '1 month', CAST({to} AS TIMESTAMP))
           - GREATEST(date_trunc('month', finished_at), CAST({from} AS TIMESTAMP)))) / 86400
         AS DOUBLE PRECISION) AS per_day
FROM deployments
WHERE tier = 'production'
  AND project = {project}
  AND finished_at >= CAST({from} AS TIMESTAMP)
  AND finished_at < CAST({to} AS TIMESTAMP)
GROUP BY date_trunc('month', finished_at)
ORDER BY 1;

-- name: team_weekly
-- GET /api/v1/metrics?team=x&interval=weekly: every key per ISO week (buckets clipped to the
-- range): deployments and per day, change failure and rework counts, exact lead time median,
-- p75 and p90, merge-to-deploy median, failed deployment recovery median, and the median time
-- to restore of the failures resolved that week on the team's production services.
WITH d AS (
  SELECT * FROM deployments
  WHERE team = {team}
    AND tier = 'production'
    AND finished_at >= CAST({year_from} AS TIMESTAMP)
    AND finished_at < CAST({year_to} AS TIMESTAMP)
),
deploys AS (
  SELECT date_trunc('week', finished_at) AS week,
         count(*) AS deployments,
         count(*) FILTER (WHERE failed) AS failed,
         count(*) FILTER (WHERE rework) AS rework,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY recovery_s)
           FILTER (WHERE failed AND recovery_s IS NOT NULL) AS recovery_median
  FROM d
  GROUP BY 1
),
leads AS (
  SELECT date_trunc('week', d.finished_at) AS week,
         count(*) AS commits,
         percentile_cont(0.5) WITHIN GROUP (
           ORDER BY EXTRACT(EPOCH FROM (d.finished_at - c.committed_at))) AS lead_median,
         percentile_cont(0.75) WITHIN GROUP (
           ORDER BY EXTRACT(EPOCH FROM (d.finished_at - c.committed_at))) AS lead_p75,
         percentile_cont(0.9) WITHIN GROUP (
           ORDER BY EXTRACT(EPOCH FROM (d.finished_at - c.committed_at))) AS lead_p90,
         percentile_cont(0.5) WITHIN GROUP (
           ORDER BY EXTRACT(EPOCH FROM (d.finished_at - c.merged_at)))
           FILTER (WHERE c.merged_at IS NOT NULL) AS merge_lead_median
  FROM d
  JOIN changes c ON c.deployment_id = d.id
  GROUP BY 1
),
restores AS (
  SELECT date_trunc('week', f.finished_at) AS week,
         percentile_cont(0.5) WITHIN GROUP (
           ORDER BY EXTRACT(EPOCH FROM (f.finished_at - f.started_at))) AS restore_median
  FROM failures f
  WHERE f.env = 'production'
    AND f.finished_at >= CAST({year_from} AS TIMESTAMP)
    AND f.finished_at < CAST({year_to} AS TIMESTAMP)
    AND f.service IN (SELECT service FROM deployments WHERE team = {team} AND tier = 'production')
  GROUP BY 1
),
weeks AS (
  SELECT week FROM deploys UNION SELECT week FROM leads UNION SELECT week FROM restores
)
SELECT CAST(CAST(w.week AS DATE) AS VARCHAR) AS week,
       coalesce(deploys.deployments, 0) AS deployments,
       CAST(coalesce(deploys.deployments, 0) AS DOUBLE PRECISION) / CAST(EXTRACT(EPOCH FROM (
           LEAST(w.week + INTERVAL '7 days', CAST({year_to} AS TIMESTAMP))
           - GREATEST(w.week, CAST({year_from} AS TIMESTAMP)))) / 86400 AS DOUBLE PRECISION)
         AS deployments_per_day,
       coalesce(deploys.failed, 0) AS failed_deployments,
       CAST(deploys.failed AS DOUBLE PRECISION) / NULLIF(deploys.deployments, 0)
         AS change_failure_rate,
       coalesce(deploys.rework, 0) AS rework_deployments,
       CAST(deploys.rework AS DOUBLE PRECISION) / NULLIF(deploys.deployments, 0) AS rework_rate,
       coalesce(leads.commits, 0) AS lead_time_count,
       CAST(leads.lead_median AS DOUBLE PRECISION) AS lead_time_median,
       CAST(leads.lead_p75 AS DOUBLE PRECISION) AS lead_time_p75,
       CAST(leads.lead_p90 AS DOUBLE PRECISION) AS lead_time_p90,
       CAST(leads.merge_lead_median AS DOUBLE PRECISION) AS merge_lead_time_median,
       CAST(restores.restore_median AS DOUBLE PRECISION) AS time_to_restore_median,
       CAST(deploys.recovery_median AS DOUBLE PRECISION) AS recovery_time_median
FROM weeks w
LEFT JOIN deploys ON deploys.week = w.week
LEFT JOIN leads ON leads.week = w.week
LEFT JOIN restores ON restores.week = w.week
ORDER BY 1;
