"""Serve moto's DynamoDB and DynamoDB Streams APIs on loopback, one request at a time.

moto's stock `moto_server` handles requests on many threads, and its TransactWriteItems is
not thread-safe: under concurrency it answers 500s and a cancelled transaction can undo
writes other clients made at the same moment. Serving its WSGI app single-threaded makes
each request atomic, as it is in DynamoDB.

It also fixes a cost of moto's TransactWriteItems: to be able to roll back, it deep-copies
the whole table once per action, so a 100-action transaction on a table of n items copies
100 × n items (13 s for 40 actions on 2,000 items here). Copying each table once per
transaction gives the same snapshot, since all copies are taken before any action runs.

Usage: python moto_server.py PORT
"""

import copy
import sys

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models.table import Table
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


class _TableCopiedOnce:
    """Stands in for the `copy` module inside one TransactWriteItems call."""

    def __init__(self) -> None:
        self._tables: dict[int, Table] = {}

    def deepcopy(self, obj, memo=None):
        if isinstance(obj, Table):
            if id(obj) not in self._tables:
                self._tables[id(obj)] = copy.deepcopy(obj)
            return self._tables[id(obj)]
        return copy.deepcopy(obj, memo)


_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_write_items_copying_once(self, transact_items):
    # Safe as a module-level swap only because this server handles one request at a time.
    dynamodb_models.copy = _TableCopiedOnce()
    try:
        return _transact_write_items(self, transact_items)
    finally:
        dynamodb_models.copy = copy


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_copying_once


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, app, threaded=False, processes=1, use_reloader=False)


if __name__ == "__main__":
    main()
