// Drives a live Petrel through the fetch client that @hey-api/openapi-ts generated from
// openapi/openapi.json into ./petrel (tests/tests/api/clients.rs generates it, compiles this file
// with tsc against it, and runs it under Node).
//
// Authenticates with an API token, creates a job, pages through a job's builds and looks up an
// artifact by its hash, checking every answer against what the test set up. Exits non-zero on
// the first mismatch. Same environment as tests/clients/python/scenario.py; the test CA comes in
// through NODE_EXTRA_CA_CERTS.

import { createClient, createConfig } from './petrel/client';
import { createJob, getJob, listBuilds, lookupHash } from './petrel';

// Node's globals, without pulling in @types/node for two of them.
declare const process: { env: Record<string, string | undefined>; exitCode?: number };

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(ok: boolean, what: string, detail?: unknown): asserts ok {
  if (!ok) throw new Error(`${what}: ${JSON.stringify(detail)}`);
}

function client(token: string) {
  return createClient(
    createConfig({
      baseUrl: env('PETREL_URL'),
      // Operations accept a bearer token or a session cookie: the token goes only as the former.
      auth: (scheme) => (scheme.type === 'http' && scheme.scheme === 'bearer' ? token : undefined),
    }),
  );
}

async function main(): Promise<void> {
  const tenant = env('PETREL_TENANT_ID');
  const jobId = env('PETREL_JOB_ID');
  const expectedBuilds = env('PETREL_BUILD_IDS').split(',');
  const sha256 = env('PETREL_SHA256');
  const api = client(env('PETREL_TOKEN'));

  // A wrong token is refused with the documented problem.
  const refused = await createJob({
    client: client('petrel_not-a-token'),
    path: { tenant_id: tenant },
    body: { name: 'never-created' },
  });
  check(refused.response.status === 401, 'wrong token', refused.response.status);
  check(refused.error?.status === 401 && refused.error.code === 'unauthenticated', 'problem', refused.error);

  // Create a job, then read it back.
  const name = env('PETREL_NEW_JOB');
  const created = await createJob({
    client: api,
    path: { tenant_id: tenant },
    body: { name, platforms: ['debian-12-x86_64'], visibility: 'private' },
  });
  check(created.response.status === 201 && created.data !== undefined, 'create job', created.error);
  const job = created.data;
  check(job.name === name && job.tenant_id === tenant && job.visibility === 'private', 'created job', job);
  const fetched = await getJob({ client: api, path: { job_id: job.id } });
  check(fetched.data?.id === job.id, 'get job', fetched.error ?? fetched.data);

  // Page through the job's builds one at a time, following next_cursor.
  const seen: string[] = [];
  let cursor: string | undefined;
  for (let i = 0; i <= expectedBuilds.length; i++) {
    const page = await listBuilds({ client: api, query: { job_id: jobId, limit: 1, cursor } });
    check(page.data !== undefined, 'list builds', page.error);
    check(page.data.items.length <= 1, 'page size', page.data.items);
    for (const build of page.data.items) {
      check(build.job_id === jobId, 'build of another job', build);
      seen.push(build.id);
    }
    cursor = page.data.next_cursor ?? undefined;
    if (cursor === undefined) break;
  }
  check(JSON.stringify(seen) === JSON.stringify(expectedBuilds), 'builds', { seen, expectedBuilds });

  // Look the artifact up by its hash: the JSON twin of builder-web's /hash.
  const found = await lookupHash({ client: api, path: { sha256 } });
  check(found.data !== undefined, 'hash look-up', found.error);
  check(found.data.sha256 === sha256 && found.data.build.id === expectedBuilds[1], 'hash build', found.data);
  check(found.data.path === env('PETREL_SHA256_PATH') && found.data.available, 'hash path', found.data);

  // An unknown hash is a documented 404 problem.
  const missing = await lookupHash({ client: api, path: { sha256: '0'.repeat(64) } });
  check(missing.response.status === 404 && missing.error?.code === 'not-found', 'unknown hash', missing.error);

  console.log(`typescript client: job ${job.id} created, ${seen.length} builds paged, hash found`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
