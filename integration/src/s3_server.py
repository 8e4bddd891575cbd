"""A local S3 emulator (moto) whose requests run one at a time.

usage: s3_server.py HOST PORT

tansu's S3 storage hands out offsets with conditional writes (If-Match on the
partition's watermark object) and relies on the store to make the check and the
write one atomic step. moto's threaded server checks If-Match and then writes, with
no lock between the two, so two produce requests to one partition can both pass the
check, take the same offset and overwrite each other's batch: acknowledged records
vanish. Serialising requests behind one lock gives moto the atomicity real S3 has.
Connections are still served by threads, so a kept-alive client never blocks another.
"""
import sys
import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialised(environ, start_response):
        with lock:
            # The body is produced inside the lock, so the write is complete before
            # the next request's precondition is checked.
            return [b"".join(app(environ, start_response))]

    run_simple(host, port, serialised, threaded=True)


if __name__ == "__main__":
    main()
