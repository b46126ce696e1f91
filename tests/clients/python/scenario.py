"""Drives a live Petrel through the Python client that openapi-python-client generated from
openapi/openapi.json (tests/tests/api/clients.rs generates it and runs this script).

Authenticates with an API token, creates a job, pages through a job's builds and looks up an
artifact by its hash, checking every answer against what the test set up. Exits non-zero on the
first mismatch.

Environment: PETREL_URL, PETREL_CA_FILE (the test CA, the only one trusted), PETREL_TOKEN (an
operator token of PETREL_TENANT_ID), PETREL_NEW_JOB (the name of the job to create),
PETREL_JOB_ID (a job with builds), PETREL_BUILD_IDS (its builds, newest first, comma-separated),
PETREL_SHA256 and PETREL_SHA256_PATH (an artifact of the second-newest build).
"""

import os
import ssl
import sys
from uuid import UUID

from petrel_client import AuthenticatedClient
from petrel_client.api.builds import list_builds, lookup_hash
from petrel_client.api.jobs import create_job, get_job
from petrel_client.models import CreateJob, HashLookup, Job, PageBuild, Problem, Visibility
from petrel_client.types import UNSET, Unset


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"{name} is not set")
    return value


def client(token: str) -> AuthenticatedClient:
    # Trusts the test CA and nothing else.
    tls = ssl.create_default_context(cafile=env("PETREL_CA_FILE"))
    # An answer the document does not describe is an error, not a None.
    return AuthenticatedClient(
        base_url=env("PETREL_URL"), token=token, verify_ssl=tls, raise_on_unexpected_status=True
    )


def main() -> None:
    tenant = UUID(env("PETREL_TENANT_ID"))
    job_id = UUID(env("PETREL_JOB_ID"))
    expected_builds = [UUID(b) for b in env("PETREL_BUILD_IDS").split(",")]
    sha256 = env("PETREL_SHA256")
    api = client(env("PETREL_TOKEN"))

    # A wrong token is refused with the documented problem.
    r = create_job.sync_detailed(
        tenant, client=client("petrel_not-a-token"), body=CreateJob(name="never-created")
    )
    assert r.status_code == 401, (r.status_code, r.content)
    assert isinstance(r.parsed, Problem) and r.parsed.status == 401, r.parsed

    # Create a job, then read it back.
    name = env("PETREL_NEW_JOB")
    r = create_job.sync_detailed(
        tenant,
        client=api,
        body=CreateJob(name=name, platforms=["debian-12-x86_64"], visibility=Visibility.PRIVATE),
    )
    assert r.status_code == 201, (r.status_code, r.content)
    created = r.parsed
    assert isinstance(created, Job), created
    assert created.name == name and created.tenant_id == tenant, created
    assert created.visibility == Visibility.PRIVATE, created
    fetched = get_job.sync(created.id, client=api)
    assert isinstance(fetched, Job) and fetched.id == created.id, fetched

    # Page through the job's builds one at a time, following next_cursor.
    seen: list[UUID] = []
    cursor: str | Unset = UNSET
    for _ in range(len(expected_builds) + 1):
        page = list_builds.sync(client=api, job_id=job_id, limit=1, cursor=cursor)
        assert isinstance(page, PageBuild), page
        assert len(page.items) <= 1, page.items
        for build in page.items:
            assert build.job_id == job_id, build
        seen += [b.id for b in page.items]
        if not isinstance(page.next_cursor, str):
            break
        cursor = page.next_cursor
    assert seen == expected_builds, (seen, expected_builds)

    # Look the artifact up by its hash: the JSON twin of builder-web's /hash.
    found = lookup_hash.sync(sha256, client=api)
    assert isinstance(found, HashLookup), found
    assert found.sha256 == sha256, found
    assert found.build.id == expected_builds[1], (found.build.id, expected_builds)
    assert found.path == env("PETREL_SHA256_PATH") and found.available, found

    # An unknown hash is a documented 404 problem.
    r = lookup_hash.sync_detailed("0" * 64, client=api)
    assert r.status_code == 404, (r.status_code, r.content)
    assert isinstance(r.parsed, Problem) and r.parsed.code == "not-found", r.parsed

    print(f"python client: job {created.id} created, {len(seen)} builds paged, hash found")


if __name__ == "__main__":
    main()
