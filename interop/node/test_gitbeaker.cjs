// Interop: @gitbeaker/rest, unchanged, reading DORA metrics from a running dorametrics.
//
// Usage: DORA_URL=http://127.0.0.1:PORT DORA_TOKEN=... NODE_PATH=…/node_modules \
//          node test_gitbeaker.cjs EXPECTED_JSON
// The server holds the dataset of interop/gitlab/seed.py; the token is restricted to the group acme.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Gitlab } = require('@gitbeaker/rest');

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const api = new Gitlab({ host: process.env.DORA_URL, token: process.env.DORA_TOKEN });
  const resources = { project: api.ProjectDORA4Metrics, group: api.GroupDORA4Metrics };
  for (const c of spec.cases) {
    const options = { startDate: spec.start_date, endDate: spec.end_date };
    if (c.interval) options.interval = c.interval;
    if (c.environment_tiers) options.environmentTiers = c.environment_tiers;
    const got = await resources[c.kind].all(c.id, c.metric, options);
    assert.deepStrictEqual(got, c.expected, JSON.stringify(c));
  }
  // Outside the token's group: GitLab's 404, raised as gitbeaker raises it.
  await assert.rejects(
    resources[spec.outside.kind].all(spec.outside.id, 'deployment_frequency'),
    (error) => {
      assert.equal(error.cause?.response?.status, 404);
      assert.match(error.cause?.description ?? error.message, /404 Project Not Found/);
      return true;
    },
  );
  // The package exports no package.json: read the installed one.
  const manifest = path.join(process.env.NODE_PATH, '@gitbeaker', 'rest', 'package.json');
  const { version } = JSON.parse(fs.readFileSync(manifest, 'utf8'));
  console.log(`@gitbeaker/rest ${version}: ${spec.cases.length} DORA metric reads as expected`);
}

main().catch((error) => {
  console.error('FAILED:', error);
  process.exit(1);
});
