"""Serve moto's DynamoDB and DynamoDB Streams APIs on loopback, one request at a time.

moto's stock `moto_server` handles requests on many threads, and its TransactWriteItems is
not thread-safe: under concurrency it answers 500s and a cancelled transaction can undo
writes other clients made at the same moment. Serving its WSGI app single-threaded makes
each request atomic, as it is in DynamoDB.

It also fixes three faults of moto's TransactWriteItems (moto 5.2.5,
`DynamoDBBackend.transact_write_items` in moto/dynamodb/models/__init__.py), which, to be
able to roll back, deep-copies the whole table once per action before running any, then
runs the actions on the live table and, if any fails, swaps the copies into the backend:

- Cost: a 100-action transaction on a table of n items copies 100 × n items (13 s for 40
  actions on 2,000 items here), plus every stream record the table ever emitted. Here each
  table's items are copied once per transaction, and nothing else of it; that is the same
  snapshot, since all copies are taken before any action runs.
- Streams: the actions' stream records are emitted as they run, so a cancelled
  transaction's writes reach the stream (DynamoDB emits nothing for it), and the swap
  replaces the Table, and with it its stream shard, so a consumer's shard iterator, which
  holds the old shard, never sees another record. Here a failed transaction instead
  restores the live table's items and cuts its stream back to where it was: the Table
  and its shard stay the same objects and only committed writes are ever in the stream.
- Memory: moto keeps every model instance it ever creates (`BaseModel.__new__` appends it
  to its class's `instances_tracked`, for the /moto-api dashboard), deep copies included,
  so every transaction's snapshot was kept for good. Here nothing is tracked.

Usage: python moto_server.py PORT
"""

import copy
import sys
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.core.common_models import BaseModel
from moto.dynamodb.models.table import Table
from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def _new_untracked(cls, *args: Any, **kwargs: Any) -> Any:
    """`BaseModel.__new__` without moto's instance tracking.

    moto appends every model instance it ever creates to its class's `instances_tracked`
    list (moto/core/common_models.py), for its /moto-api dashboard and S3's cleanup only,
    and never empties it: every Item written, stream record, shard iterator, and copy of a
    table or of Query results stays in memory for good (about 23 GB after 10,000
    transactions on 1,000-item tables). Neither the dashboard nor S3 is used here.
    """
    return object.__new__(cls)


BaseModel.__new__ = _new_untracked  # type: ignore[method-assign]


class _TableSnapshots:
    """Stands in for the `copy` module inside one TransactWriteItems call.

    moto takes its rollback copies with `copy.deepcopy(self.tables[name])`, one per action
    before running any, and on failure puts them back with `self.tables[name] = copy`.
    Here the first such call for a table records its items (deep-copied: UpdateItem
    changes items in place) and its stream's length, and every call returns the live
    table itself, so that moto's swap puts back the same object; `restore` then undoes
    the transaction's writes on it.
    """

    def __init__(self) -> None:
        # id(table) -> (table, its items, its stream's length or None), all as before
        # the first action. Holding the table keeps its id from being reused meanwhile.
        self._snapshots: dict[int, tuple[Table, Any, int | None]] = {}

    def deepcopy(self, obj: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(obj, Table):
            if id(obj) not in self._snapshots:
                shard = obj.stream_shard
                self._snapshots[id(obj)] = (
                    obj,
                    copy.deepcopy(obj.items),
                    None if shard is None else len(shard.items),
                )
            return obj
        # UpdateItem's copy of the item it changes (its stream record's old image).
        return copy.deepcopy(obj, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    def restore(self) -> None:
        """Put every table the transaction touched back as it was before it, in place.

        A transaction's actions change a table only through `Table.put_item`,
        `Table.delete_item` and UpdateItem's in-place change of an `Item`, all of which
        touch nothing but the table's `items` and its stream shard's `items` list, to
        which `StreamShard.add` appends one record per write, numbered by its position.
        Cutting that list back to its old length removes exactly the transaction's
        records, and the next write gets the number the first of them had; no consumer
        can have read them, since no other request ran meanwhile.

        Not undone: if a moto Lambda event source mapping is attached to the table,
        `StreamShard.add` has already handed the records to moto's Lambda (and, if it
        took them, emptied the list); this project reads streams with GetRecords.
        """
        for table, items, stream_length in self._snapshots.values():
            table.items = items
            if table.stream_shard is not None and stream_length is not None:
                del table.stream_shard.items[stream_length:]


_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_write_items_atomically(self, transact_items):
    # Safe as a module-level swap only because this server handles one request at a time.
    snapshots = _TableSnapshots()
    dynamodb_models.copy = snapshots
    try:
        return _transact_write_items(self, transact_items)
    except BaseException:
        # Whatever failed, DynamoDB applies none of the transaction. moto itself rolls
        # back on a cancellation (TransactionCanceledException) or on a validation error
        # mid-way, but not on every error it can raise after running some actions.
        snapshots.restore()
        raise
    finally:
        dynamodb_models.copy = copy


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_atomically


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, app, threaded=False, processes=1, use_reloader=False)


if __name__ == "__main__":
    main()
