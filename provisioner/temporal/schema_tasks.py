"""The one-off tasks `provision schema` runs in the admin-tools image (seed tasks 11.2 and 25).

DSQL: `temporal-dsql-tool setup-schema --version 0.0` creates only the version tables and leaves a
newer version alone, so it is safe on any database; `update-schema --schema-name dsql/temporal
--version V` then applies whatever is missing up to V: the whole schema on a new database, the rest on
an older one, nothing on a current one (tools/common/schema/updatetask.go in the fork). The tool
connects as admin with an IAM token, like the server.

Visibility: `temporal-elasticsearch-tool setup-schema` puts the cluster settings and the index
template (idempotent), then `create-index` makes the index and skips one that exists. It signs with
the task role (aws-sdk-default) and takes the region from AWS_REGION; `--quiet` is never passed, as
it turns failures into exit 0.
"""
from __future__ import annotations

SCHEMA_TASKS = ("dsql", "visibility")
# RunTask's startedBy for these tasks: how a rerun finds one still running and `destroy` stops them.
STARTED_BY = "provision-schema"
# The seed's size for the set-up task (11.2): a quarter of a vCPU and 512 MiB.
CPU, MEMORY = 256, 512


def script(task: str, dsql_host: str, dsql_version: str, opensearch_endpoint: str, index: str) -> str:
    if task == "dsql":
        tool = f'temporal-dsql-tool --endpoint {dsql_host} --region "$AWS_REGION"'
        return "\n".join([
            "set -eu",
            f"{tool} setup-schema --version 0.0",
            f"{tool} update-schema --schema-name dsql/temporal --version {dsql_version}",
        ])
    tool = f"temporal-elasticsearch-tool --ep https://{opensearch_endpoint}:443 --aws-credentials aws-sdk-default --tls"
    return "\n".join(["set -eu", f"{tool} setup-schema", f"{tool} create-index --index {index}"])
