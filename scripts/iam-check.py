"""Checks what SAM makes of the template's IAM (run by scripts/infra-check.sh).

SAM adds policies of its own to the roles it creates: for a function with a DynamoDB stream
source, AWSLambdaDynamoDBExecutionRole, which reads every stream in the account. This
transforms the template as `sam deploy` would and fails if any role of the stack can read a
DynamoDB stream other than the events table's, or holds a managed policy at all.

It also checks what docs/architecture.md says IAM enforces for the append function: on
DynamoDB only PutItem, ConditionCheckItem, GetItem and Query (no UpdateItem, DeleteItem,
BatchWriteItem or Scan), each statement limited by LeadingKeys to stream partitions and
subscribers' checkpoints.
"""
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self):
        return {}


STREAM_READS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}

APPEND_ROLE = "AppendApiFunctionRole"
APPEND_ACTIONS = {
    "dynamodb:PutItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:GetItem",
    "dynamodb:Query",
}
APPEND_LEADING_KEYS = {"STREAM#*", "SUBSCRIPTION#*"}


def append_role_problems(props):
    """What the append function's role may do on DynamoDB beyond docs/architecture.md."""
    problems = []
    for policy in props.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement.get("Action", [])
            actions = {actions} if isinstance(actions, str) else set(actions)
            dynamo = {a for a in actions if a.startswith("dynamodb:")}
            if not dynamo or statement.get("Effect") != "Allow":
                continue
            if dynamo - APPEND_ACTIONS:
                problems.append(f"{APPEND_ROLE} may {sorted(dynamo - APPEND_ACTIONS)}")
            keys = (
                statement.get("Condition", {})
                .get("ForAllValues:StringLike", {})
                .get("dynamodb:LeadingKeys")
            )
            if not keys or set(keys) - APPEND_LEADING_KEYS:
                problems.append(f"{APPEND_ROLE} reaches beyond {sorted(APPEND_LEADING_KEYS)}: {keys}")
    return problems


def main(path):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = yaml_parse(open(path).read())
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            # The translator wants an S3 location; the code itself plays no part here.
            resource["Properties"]["CodeUri"] = "s3://bucket/key"
    out = transform(template, {}, NoManagedPolicies())
    problems = []
    checked_append = False
    for name, resource in out["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        props = resource["Properties"]
        if name == APPEND_ROLE:
            problems += append_role_problems(props)
            checked_append = True
        for arn in props.get("ManagedPolicyArns", []):
            text = json.dumps(arn)
            if "AWSLambdaDynamoDBExecutionRole" in text or "AdministratorAccess" in text:
                problems.append(f"{name} holds {text}")
        for policy in props.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement.get("Action", [])
                actions = {actions} if isinstance(actions, str) else set(actions)
                if actions & STREAM_READS and statement.get("Resource") != {
                    "Fn::GetAtt": ["EventsTable", "StreamArn"]
                }:
                    problems.append(
                        f"{name} reads streams beyond the events table's: {json.dumps(statement)}"
                    )
    if not checked_append:
        problems.append(f"no role {APPEND_ROLE} in the transformed template")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(
        f"{path}: no role reads a DynamoDB stream beyond the events table's; "
        f"{APPEND_ROLE} only puts, checks, gets and queries stream partitions and subscribers' checkpoints"
    )


if __name__ == "__main__":
    main(sys.argv[1])
