"""Serve moto's DynamoDB and DynamoDB Streams APIs on loopback, one request at a time.

moto's stock `moto_server` handles requests on many threads, and its TransactWriteItems is
not thread-safe: under concurrency it answers 500s and a cancelled transaction can undo
writes other clients made at the same moment. Serving its WSGI app single-threaded makes
each request atomic, as it is in DynamoDB.

Usage: python moto_server.py PORT
"""

import sys

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, app, threaded=False, processes=1, use_reloader=False)


if __name__ == "__main__":
    main()
