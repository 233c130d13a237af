"""Peak memory of the local server while it refuses the worst request bodies we can build.

Each body is sent to a fresh `eventstore-local` (the same router the append function runs),
and the server's peak resident set (VmHWM) is read before and after. Run inside
scripts/with-dynamodb.sh (`make bench` does). Reports figures; asserts nothing.

Usage: python body-memory.py path/to/eventstore-local
"""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

LIMIT = 6 * 1024 * 1024  # the local server's and Lambda's body limit


def fill(head: str, unit: str, tail: str) -> bytes:
    """`head` + as many `unit`s as fit in the body limit + `tail`."""
    n = (LIMIT - len(head) - len(tail)) // len(unit)
    text = head + unit * n + tail
    return (text[: len(text) - len(tail)].rstrip(",") + tail).encode()


def bodies() -> list[tuple[str, bytes]]:
    big_data = "[" + ",".join(["1"] * 30_000) + "]"  # 60 KB
    return [
        ("6 MiB events array of 1s", fill('{"events":[', "1,", "]}")),
        ("6 MiB object of unknown keys", fill("{", '"k":1,', "}")),
        ("6 MiB of repeated expectedVersion", fill("{", '"expectedVersion":1,', '"events":[]}')),
        ("one event, 6 MiB data array", fill('{"events":[{"eventType":"A","data":[', "1,", "]}]}")),
        ("one event, 6 MiB metadata object", fill('{"events":[{"eventType":"A","data":1,"metadata":{', '"k":1,', "}}]}")),
        (
            "100 events of 60 KB data each",
            ('{"events":[' + ",".join(['{"eventType":"A","data":' + big_data + "}"] * 100) + "]}").encode(),
        ),
        ("nesting 3 million deep", ('{"events":[{"eventType":"A","data":' + "[" * 3_000_000).encode()),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def post(port: int, path: str, body: bytes) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, method="POST",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def main() -> None:
    server = sys.argv[1]
    print(f"{'body':<36} {'bytes':>9} {'status':>6} {'peak before':>12} {'peak after':>11}")
    for name, body in bodies():
        port = free_port()
        env = dict(os.environ, PORT=str(port), RUST_LOG="warn")
        proc = subprocess.Popen([server], env=env, stdout=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            # One ordinary append first, so that "before" includes a warmed-up server.
            post(port, "/streams/Mem-1/events", b'{"events":[{"eventType":"A","data":1}]}')
            before = peak_kib(proc.pid)
            status = post(port, "/streams/Mem-1/events", body)
            after = peak_kib(proc.pid)
            print(f"{name:<36} {len(body):>9} {status:>6} {before / 1024:>9.1f} MB {after / 1024:>8.1f} MB")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
