"""Interop: the official Datadog Python client, unchanged, against a running dorametrics.

Usage: DORA_URL=http://127.0.0.1:PORT DORA_TOKEN=... python test_datadog_client.py
Every response must deserialize into the client's typed models (not unparsed objects).
"""

import os
import sys
import time
from datetime import datetime, timezone

from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import ApiException, NotFoundException
from datadog_api_client.v2.api.dora_metrics_api import DORAMetricsApi
from datadog_api_client.v2.model.dora_deployment_object import DORADeploymentObject
from datadog_api_client.v2.model.dora_deployment_object_attributes import DORADeploymentObjectAttributes
from datadog_api_client.v2.model.dora_deployment_patch_remediation import DORADeploymentPatchRemediation
from datadog_api_client.v2.model.dora_deployment_patch_remediation_type import DORADeploymentPatchRemediationType
from datadog_api_client.v2.model.dora_deployment_patch_request import DORADeploymentPatchRequest
from datadog_api_client.v2.model.dora_deployment_patch_request_attributes import DORADeploymentPatchRequestAttributes
from datadog_api_client.v2.model.dora_deployment_patch_request_data import DORADeploymentPatchRequestData
from datadog_api_client.v2.model.dora_deployment_patch_request_data_type import DORADeploymentPatchRequestDataType
from datadog_api_client.v2.model.dora_deployment_patch_by_version_request import DORADeploymentPatchByVersionRequest
from datadog_api_client.v2.model.dora_deployment_patch_by_version_request_attributes import (
    DORADeploymentPatchByVersionRequestAttributes,
)
from datadog_api_client.v2.model.dora_deployment_patch_by_version_request_data import (
    DORADeploymentPatchByVersionRequestData,
)
from datadog_api_client.v2.model.dora_deployment_request import DORADeploymentRequest
from datadog_api_client.v2.model.dora_deployment_request_attributes import DORADeploymentRequestAttributes
from datadog_api_client.v2.model.dora_deployment_request_data import DORADeploymentRequestData
from datadog_api_client.v2.model.dora_failure_request import DORAFailureRequest
from datadog_api_client.v2.model.dora_failure_request_attributes import DORAFailureRequestAttributes
from datadog_api_client.v2.model.dora_failure_request_data import DORAFailureRequestData
from datadog_api_client.v2.model.dora_git_info import DORAGitInfo
from datadog_api_client.v2.model.dora_git_info_response import DORAGitInfoResponse
from datadog_api_client.v2.model.dora_incident_object import DORAIncidentObject
from datadog_api_client.v2.model.dora_incident_object_attributes import DORAIncidentObjectAttributes
from datadog_api_client.v2.model.dora_list_deployments_request import DORAListDeploymentsRequest
from datadog_api_client.v2.model.dora_list_deployments_request_attributes import DORAListDeploymentsRequestAttributes
from datadog_api_client.v2.model.dora_list_deployments_request_data import DORAListDeploymentsRequestData
from datadog_api_client.v2.model.dora_list_deployments_request_data_type import DORAListDeploymentsRequestDataType
from datadog_api_client.v2.model.dora_list_failures_request import DORAListFailuresRequest
from datadog_api_client.v2.model.dora_list_failures_request_attributes import DORAListFailuresRequestAttributes
from datadog_api_client.v2.model.dora_list_failures_request_data import DORAListFailuresRequestData
from datadog_api_client.v2.model.dora_list_failures_request_data_type import DORAListFailuresRequestDataType

SHA = "66adc9350f2cc9b250b69abddab733dd55e1a588"
BASE = 1_735_689_600  # 2025-01-01T00:00:00Z
RUN = str(int(time.time() * 1000))  # keeps ids unique when run twice against one server


def utc(seconds):
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def deployment(api, service, env, minute, version, **extra):
    finished = BASE + minute * 60
    attributes = DORADeploymentRequestAttributes(
        service=service,
        env=env,
        started_at=(finished - 30) * 1_000_000_000,
        finished_at=finished * 1_000_000_000,
        version=version,
        team="backend",
        git=DORAGitInfo(repository_url="https://token:secret@github.com/acme/shop.git", commit_sha=SHA),
        custom_tags=["language:python", f"run:{RUN}"],
        **extra,
    )
    response = api.create_dora_deployment(body=DORADeploymentRequest(data=DORADeploymentRequestData(attributes=attributes)))
    return response.data.id


def list_deployments(api, **attributes):
    body = DORAListDeploymentsRequest(
        data=DORAListDeploymentsRequestData(
            attributes=DORAListDeploymentsRequestAttributes(**attributes),
            type=DORAListDeploymentsRequestDataType.DORA_DEPLOYMENTS_LIST_REQUEST,
        )
    )
    return api.list_dora_deployments(body=body).data


def check_typed_deployment(obj):
    assert isinstance(obj, DORADeploymentObject), type(obj)
    assert isinstance(obj.attributes, DORADeploymentObjectAttributes), type(obj.attributes)
    assert isinstance(obj.attributes.started_at, datetime), type(obj.attributes.started_at)
    assert isinstance(obj.attributes.finished_at, datetime)
    assert isinstance(obj.attributes.git, DORAGitInfoResponse), type(obj.attributes.git)


def check_typed_failure(obj):
    assert isinstance(obj, DORAIncidentObject), type(obj)
    assert isinstance(obj.attributes, DORAIncidentObjectAttributes), type(obj.attributes)
    assert isinstance(obj.attributes.started_at, datetime)


def main():
    configuration = Configuration(host=os.environ["DORA_URL"])
    configuration.api_key["apiKeyAuth"] = os.environ["DORA_TOKEN"]
    configuration.api_key["appKeyAuth"] = os.environ["DORA_TOKEN"]
    with ApiClient(configuration) as client:
        api = DORAMetricsApi(client)

        # Create deployments (one with a client-given id) and read one back by id.
        ids = [
            deployment(api, f"shop-{RUN}", "production", 0, "v1", id=f"py-{RUN}-0000001"),
            deployment(api, f"shop-{RUN}", "production", 1, "v2"),
            deployment(api, f"shop-{RUN}", "staging", 2, "v3"),
            deployment(api, f"api-{RUN}", "production", 3, "v4"),
        ]
        assert ids[0] == f"py-{RUN}-0000001", ids[0]
        fetched = api.get_dora_deployment(deployment_id=ids[0]).data
        check_typed_deployment(fetched)
        assert fetched.id == ids[0]
        assert fetched.attributes.service == f"shop-{RUN}"
        assert fetched.attributes.git.repository_id == "github.com/acme/shop"
        assert fetched.attributes.finished_at == utc(BASE), fetched.attributes.finished_at
        assert fetched.attributes.started_at == utc(BASE - 30)
        assert fetched.attributes.custom_tags == ["language:python", f"run:{RUN}"]

        # List with a query, from/to, sort and limit.
        found = list_deployments(
            api,
            query=f"service:(shop-{RUN} OR api-{RUN}) env:production",
            _from=utc(BASE),
            to=utc(BASE + 3 * 60),
            sort="-finished_at",
            limit=2,
        )
        for obj in found:
            check_typed_deployment(obj)
        assert [d.id for d in found] == [ids[3], ids[1]], [d.id for d in found]
        found = list_deployments(api, query=f"run:{RUN} -env:production", sort="finished_at", limit=1000)
        assert [d.id for d in found] == [ids[2]]

        # Patch by id and by version.
        api.patch_dora_deployment(
            deployment_id=ids[1],
            body=DORADeploymentPatchRequest(
                data=DORADeploymentPatchRequestData(
                    id=ids[1],
                    type=DORADeploymentPatchRequestDataType.DORA_DEPLOYMENT_PATCH_REQUEST,
                    attributes=DORADeploymentPatchRequestAttributes(
                        change_failure=True,
                        remediation=DORADeploymentPatchRemediation(
                            id=ids[0], type=DORADeploymentPatchRemediationType.ROLLBACK
                        ),
                    ),
                )
            ),
        )
        api.patch_dora_deployment_by_version(
            body=DORADeploymentPatchByVersionRequest(
                data=DORADeploymentPatchByVersionRequestData(
                    type=DORADeploymentPatchRequestDataType.DORA_DEPLOYMENT_PATCH_REQUEST,
                    attributes=DORADeploymentPatchByVersionRequestAttributes(
                        service=f"api-{RUN}", env="production", version="v4", change_failure=False
                    ),
                )
            )
        )

        # Delete one.
        api.delete_dora_deployment(deployment_id=ids[2])
        try:
            api.get_dora_deployment(deployment_id=ids[2])
            raise AssertionError("deleted deployment still readable")
        except NotFoundException:
            pass

        # Failures: open one, resolve it by re-posting its id, list and get it.
        failure_id = f"py-incident-{RUN}"
        for finished in (None, BASE + 3600):
            extra = {} if finished is None else {"finished_at": finished}
            api.create_dora_failure(
                body=DORAFailureRequest(
                    data=DORAFailureRequestData(
                        attributes=DORAFailureRequestAttributes(
                            id=failure_id,
                            name="Checkout is down",
                            services=[f"shop-{RUN}"],
                            env="production",
                            severity="High",
                            started_at=BASE,
                            git=DORAGitInfo(repository_url="https://github.com/acme/shop", commit_sha=SHA),
                            **extra,
                        )
                    )
                )
            )
        failure = api.get_dora_failure(failure_id=failure_id).data
        check_typed_failure(failure)
        assert failure.attributes.finished_at == utc(BASE + 3600), failure.attributes.finished_at
        assert failure.attributes.git.repository_url == "https://github.com/acme/shop"
        failures = api.list_dora_failures(
            body=DORAListFailuresRequest(
                data=DORAListFailuresRequestData(
                    attributes=DORAListFailuresRequestAttributes(query=f"service:shop-{RUN}", limit=10),
                    type=DORAListFailuresRequestDataType.DORA_FAILURES_LIST_REQUEST,
                )
            )
        ).data
        assert [f.id for f in failures] == [failure_id]
        for obj in failures:
            check_typed_failure(obj)
        api.delete_dora_failure(failure_id=failure_id)

        # A bad request raises the client's exception with status 400 and a precise detail.
        try:
            list_deployments(api, query="service:(a OR")
            raise AssertionError("a bad query was accepted")
        except ApiException as error:
            assert error.status == 400, error.status
            assert "/data/attributes/query" in str(error.body), error.body
        try:
            api.create_dora_deployment(
                body=DORADeploymentRequest(
                    data=DORADeploymentRequestData(
                        attributes=DORADeploymentRequestAttributes(
                            service="x", started_at=BASE + 10, finished_at=BASE
                        )
                    )
                )
            )
            raise AssertionError("finished before started was accepted")
        except ApiException as error:
            assert error.status == 400, error.status
            assert "finished_at must not be before started_at" in str(error.body), error.body

    print("datadog-api-client interop: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        raise
