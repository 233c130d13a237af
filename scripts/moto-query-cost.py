"""What a Query costs on moto by the number of items it returns (run with
scripts/with-dynamodb.sh .venv/bin/python scripts/moto-query-cost.py).

Builds one 2,000-item stream partition of event-sized items and times backward Queries of
growing `Limit`, all attributes and projected to four, ten times each. docs/testing.md
uses it to tell moto's cost per returned item from DynamoDB's cost per request.
"""
import json
import os
import time

import boto3

ddb = boto3.client(
    "dynamodb",
    region_name=os.environ.get("AWS_REGION", "us-east-1"),
    endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"],
)
TABLE = "moto-query-cost"
ddb.create_table(
    TableName=TABLE,
    KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
    AttributeDefinitions=[
        {"AttributeName": "PK", "AttributeType": "S"},
        {"AttributeName": "SK", "AttributeType": "S"},
    ],
    BillingMode="PAY_PER_REQUEST",
)
for v in range(1, 2001):
    item = {
        "PK": {"S": "STREAM#Ledger-1"},
        "SK": {"S": "VERSION#%020d" % v},
        "version": {"N": str(v)},
        "eventType": {"S": "Deposited"},
        "data": {"S": json.dumps({"amount": v})},
    }
    for name in ["eventId", "createdAt", "category", "streamId", "metadata", "schemaVersion",
                 "globalPosition", "globalBucket", "typeSequence", "categorySequence"]:
        item[name] = {"S": "x" * 20}
    ddb.put_item(TableName=TABLE, Item=item)


def milliseconds(limit, projected):
    args = dict(
        TableName=TABLE,
        ConsistentRead=True,
        KeyConditionExpression="PK = :pk AND SK BETWEEN :low AND :high",
        ExpressionAttributeValues={
            ":pk": {"S": "STREAM#Ledger-1"},
            ":low": {"S": "VERSION#"},
            ":high": {"S": "VERSION~"},
        },
        ScanIndexForward=False,
        Limit=limit,
    )
    if projected:
        args.update(ProjectionExpression="SK, #d, eventType, version", ExpressionAttributeNames={"#d": "data"})
    start = time.perf_counter()
    for _ in range(10):
        ddb.query(**args)
    return (time.perf_counter() - start) / 10 * 1000


print("| Limit | all 15 attributes | 4 projected |")
print("|---|---|---|")
for limit in (2, 11, 51, 101, 201):
    print(f"| {limit} | {milliseconds(limit, False):.1f} ms | {milliseconds(limit, True):.1f} ms |")
