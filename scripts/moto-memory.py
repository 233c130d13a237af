"""Memory and time of the local DynamoDB (moto, through a launcher) under transactions.

Starts the launcher on a free port, fills a table with 1,000 items, runs 1,000 two-put
TransactWriteItems, and prints the time they took and moto's resident memory after them.
Reports figures; asserts nothing (`make bench` runs it).

Usage: python moto-memory.py path/to/moto_server.py
"""

import socket
import subprocess
import sys
import time

import boto3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    launcher = sys.argv[1]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, launcher, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        db = boto3.client(
            "dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local",
        )
        db.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"}, {"AttributeName": "SK", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        )
        for i in range(1000):
            db.put_item(TableName="t", Item={"PK": {"S": f"p{i}"}, "SK": {"S": "x"}, "d": {"S": "y" * 200}})
        started = time.time()
        for i in range(1000):
            db.transact_write_items(TransactItems=[
                {"Put": {"TableName": "t", "Item": {"PK": {"S": f"q{i}"}, "SK": {"S": sk}, "d": {"S": "z" * 200}}}}
                for sk in ("a", "b")
            ])
        elapsed = time.time() - started
        with open(f"/proc/{server.pid}/status") as f:
            rss_kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        print(f"{launcher}: 1,000 two-put transactions on a 1,000-item table in {elapsed:.1f} s; "
              f"moto's resident memory after them: {rss_kib / 1024:.0f} MB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
