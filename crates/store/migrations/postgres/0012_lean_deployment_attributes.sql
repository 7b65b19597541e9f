-- A deployment's own fields (service, source, env, team, version, repository_id, commit_sha)
-- are searched in their columns: its attribute rows are those of its custom tags, and of its
-- fields that are numbers (numeric ranges compare `num`). Rows of numbers stay; the others
-- of those keys go, and those of custom tags come back.
DELETE FROM deployment_attrs
WHERE num IS NULL
  AND key IN ('service', 'source', 'env', 'team', 'version', 'repository_id', 'commit_sha');

INSERT INTO deployment_attrs (owner_pk, key, value, num)
SELECT d.pk, split_part(t.value, ':', 1), substr(t.value, strpos(t.value, ':') + 1), NULL
FROM deployments d, jsonb_array_elements_text(d.custom_tags::jsonb) AS t(value)
WHERE strpos(t.value, ':') > 0
  AND split_part(t.value, ':', 1) IN ('service', 'source', 'env', 'team', 'version', 'repository_id', 'commit_sha')
  AND NOT EXISTS (
      SELECT 1 FROM deployment_attrs a
      WHERE a.owner_pk = d.pk AND a.key = split_part(t.value, ':', 1) AND a.value = substr(t.value, strpos(t.value, ':') + 1)
  );
