"""moto's DynamoDB as the pipeline uses it, stock against `moto_server.py`, paired rounds in one run.

Each round does the same work twice, stock then patched, on fresh keys, with the requests tubes sends: an
idempotency claim of a new key (a conditional `PutItem`), a payment's debit (a `TransactWriteItems` of the
account's update and the decision's put), the claim's completion (a `PutItem`), and a claim of the completed key
(its condition fails).

- By default requests go through moto's WSGI app in-process (no sockets), stock caching against patched (4., 5.
  and 9.), so what is measured is moto's own work; it prints milliseconds per request and the ratio.
- With `--http`, two servers run side by side on loopback, stock `moto.server` and `moto_server.py` (every
  patch, 7. and 8. included), and one client sends the same work to each over HTTP/1.1, keeping its
  connection open when the server lets it (one, because stock moto's transactions fail under concurrent
  requests: the race 1. and 2. are about); it prints each server's CPU milliseconds per request (Linux:
  /proc/PID/stat), the wall time per request, and the CPU ratio.

    .venv/bin/python scripts/bench_moto.py [--http] [ROUNDS] [KEYS_PER_ROUND]
"""

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import moto_server  # noqa: E402 - applies the patches
from moto.moto_server.werkzeug_app import create_backend_app  # noqa: E402
from werkzeug.test import Client  # noqa: E402

HEADERS = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=test/20261127/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host, Signature=0",
    "Content-Type": "application/x-amz-json-1.0",
}
HASH = "5f" * 32


def in_process():
    """A `call(op, body) -> status` through the patched WSGI app, in this process."""
    client = Client(moto_server._SerialDynamoDB(create_backend_app))

    def call(op, body):
        answer = client.post(
            "/",
            data=json.dumps(body),
            headers={**HEADERS, "X-Amz-Target": "DynamoDB_20120810." + op},
            base_url="http://127.0.0.1:5000",
        )
        return answer.status_code

    return call


def over_http(port):
    """A `call(op, body) -> status` over HTTP to 127.0.0.1:PORT, one kept connection per thread."""
    local = threading.local()

    def call(op, body):
        connection = getattr(local, "connection", None) or http.client.HTTPConnection("127.0.0.1", port)
        local.connection = connection
        try:
            connection.request(
                "POST", "/", json.dumps(body), {**HEADERS, "X-Amz-Target": "DynamoDB_20120810." + op}
            )
            answer = connection.getresponse()
            answer.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            local.connection = None
            raise
        if answer.will_close:
            connection.close()
            local.connection = None
        return answer.status

    return call


def create_tables(call):
    for table, key in (("idempotency", "key"), ("ledger", "pk")):
        assert call("CreateTable", {
            "TableName": table,
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        }) == 200


def workload(call, keys):
    """`work(prefix)`: the round's requests on fresh keys; returns wall milliseconds per request."""

    def claim(key, now):
        return call("PutItem", {
            "TableName": "idempotency",
            "Item": {
                "key": {"S": key}, "status": {"S": "IN_PROGRESS"}, "hash": {"S": HASH},
                "lock_expires_ms": {"N": str(now + 10_000)}, "expires_at": {"N": str(now // 1000 + 11)},
                "attempts": {"N": "1"},
            },
            "ConditionExpression": "attribute_not_exists(#k)", "ExpressionAttributeNames": {"#k": "key"},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        })

    def debit(account, payment):
        return call("TransactWriteItems", {"TransactItems": [
            {"Update": {
                "TableName": "ledger", "Key": {"pk": {"S": f"account#{account}"}},
                "UpdateExpression": "SET balance = balance - :amount",
                "ConditionExpression": "attribute_exists(pk) AND frozen = :no AND currency = :currency AND "
                "balance >= :amount AND (attribute_not_exists(per_payment_limit) OR per_payment_limit >= :amount)",
                "ExpressionAttributeValues": {
                    ":amount": {"N": "1"}, ":currency": {"S": "EUR"}, ":no": {"BOOL": False},
                },
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }},
            {"Put": {
                "TableName": "ledger",
                "Item": {
                    "pk": {"S": f"payment#{payment}"}, "account_id": {"S": account}, "amount": {"N": "1"},
                    "outcome": {"S": "processed"}, "at": {"S": "2026-11-28T10:00:00Z"},
                },
                "ConditionExpression": "attribute_not_exists(pk)", "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }},
        ]})

    def complete(key, now):
        return call("PutItem", {
            "TableName": "idempotency",
            "Item": {
                "key": {"S": key}, "status": {"S": "COMPLETED"}, "hash": {"S": HASH},
                "expires_at": {"N": str(now // 1000 + 86_400)}, "attempts": {"N": "1"},
            },
            "ConditionExpression": "#h = :h", "ExpressionAttributeNames": {"#h": "hash"},
            "ExpressionAttributeValues": {":h": {"S": HASH}},
        })

    def work(prefix):
        now = int(time.time() * 1000)
        assert call("PutItem", {"TableName": "ledger", "Item": {
            "pk": {"S": f"account#{prefix}"}, "currency": {"S": "EUR"}, "balance": {"N": str(keys)},
            "frozen": {"BOOL": False},
        }}) == 200
        started = time.perf_counter()
        for i in range(keys):
            key = f"{prefix}#{i}"
            assert claim(key, now) == 200
            assert debit(prefix, key) == 200
            assert complete(key, now) == 200
            assert claim(key, now) == 400  # completed: the condition fails
        return (time.perf_counter() - started) * 1000 / (4 * keys)

    return work


def main():
    args = [a for a in sys.argv[1:] if a != "--http"]
    rounds = int(args[0]) if args else 5
    keys = int(args[1]) if len(args) > 1 else 300
    if "--http" in sys.argv:
        http_rounds(rounds, keys)
        return
    call = in_process()
    create_tables(call)
    work = workload(call, keys)
    work("warm-up")
    ratios = []
    for r in range(rounds):
        moto_server.cache_expressions(False)
        stock = work(f"stock{r}")
        moto_server.cache_expressions(True)
        patched = work(f"patched{r}")
        ratios.append(stock / patched)
        print(f"round {r}: stock {stock:.2f} ms/request, patched {patched:.2f} ms/request, {stock / patched:.2f}x")
    print(f"median {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f}) over {rounds} rounds")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_rounds(rounds, keys, clients=1):
    here = os.path.dirname(os.path.abspath(__file__))
    servers = {}
    for name, script in (("stock", ["-m", "moto.server"]), ("patched", [os.path.join(here, "moto_server.py")])):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, *script, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        servers[name] = (process, port)
    try:
        works = {}
        for name, (process, port) in servers.items():
            call = over_http(port)
            for _ in range(200):  # until it listens
                try:
                    create_tables(call)
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                raise SystemExit(f"the {name} moto did not start")
            works[name] = workload(call, keys)
            works[name](f"warm-up{name}")
        ratios = []
        for r in range(rounds):
            figures = {}
            for name, (process, _) in servers.items():
                cpu = cpu_seconds(process.pid)
                started = time.perf_counter()
                threads = [
                    threading.Thread(target=works[name], args=(f"{name}{r}-{t}",)) for t in range(clients)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                requests = 4 * keys * clients
                figures[name] = (
                    (cpu_seconds(process.pid) - cpu) * 1000 / requests,
                    (time.perf_counter() - started) * 1000 / requests,
                )
            ratios.append(figures["stock"][0] / figures["patched"][0])
            print(
                f"round {r}: stock {figures['stock'][0]:.2f} CPU ms/request ({figures['stock'][1]:.2f} ms wall), "
                f"patched {figures['patched'][0]:.2f} ({figures['patched'][1]:.2f} ms wall), {ratios[-1]:.2f}x"
            )
        print(f"median {statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f}) over {rounds} rounds")
    finally:
        for process, _ in servers.values():
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
