"""moto's DynamoDB as the pipeline uses it, stock against `moto_server.py`'s expression caching, in one process.

Each round does the same work twice, stock then patched, on fresh keys: an idempotency claim of a new key, its
completion, and a claim of a completed key (its condition fails), with the expressions tubes sends. It prints the
milliseconds per request of each, and the ratio. Requests go through moto's WSGI app in-process (no sockets), so
what is measured is moto's own work.

    .venv/bin/python scripts/bench_moto.py [ROUNDS] [KEYS_PER_ROUND]
"""

import json
import os
import statistics
import sys
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
NAMES = {"#k": "key", "#s": "status", "#h": "hash", "#l": "lock_expires_ms", "#e": "expires_at", "#a": "attempts"}
HASH = "5f" * 32


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    client = Client(moto_server._SerialDynamoDB(create_backend_app))

    def call(op, body):
        answer = client.post(
            "/",
            data=json.dumps(body),
            headers={**HEADERS, "X-Amz-Target": "DynamoDB_20120810." + op},
            base_url="http://127.0.0.1:5000",
        )
        return answer.status_code

    assert call("CreateTable", {
        "TableName": "idempotency",
        "KeySchema": [{"AttributeName": "key", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "key", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }) == 200

    def claim(key, now):
        return call("UpdateItem", {
            "TableName": "idempotency", "Key": {"key": {"S": key}},
            "UpdateExpression": "SET #s = :progress, #h = :h, #l = :lock, #e = :e ADD #a :one",
            "ConditionExpression": "attribute_not_exists(#k) OR (#s = :progress AND #l < :now) "
            "OR (#s = :released AND #h = :h) OR #e < :now_s",
            "ExpressionAttributeNames": NAMES,
            "ExpressionAttributeValues": {
                ":progress": {"S": "IN_PROGRESS"}, ":released": {"S": "RELEASED"}, ":h": {"S": HASH},
                ":lock": {"N": str(now + 10_000)}, ":e": {"N": str(now // 1000 + 11)}, ":one": {"N": "1"},
                ":now": {"N": str(now)}, ":now_s": {"N": str(now // 1000)},
            },
            "ReturnValues": "UPDATED_NEW", "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        })

    def complete(key, now):
        return call("UpdateItem", {
            "TableName": "idempotency", "Key": {"key": {"S": key}},
            "UpdateExpression": "SET #s = :done, #e = :e REMOVE #l", "ConditionExpression": "#h = :h",
            "ExpressionAttributeNames": {n: NAMES[n] for n in ("#s", "#h", "#l", "#e")},
            "ExpressionAttributeValues": {
                ":done": {"S": "COMPLETED"}, ":h": {"S": HASH}, ":e": {"N": str(now // 1000 + 86_400)},
            },
        })

    def work(prefix):
        now = int(time.time() * 1000)
        started = time.perf_counter()
        for i in range(keys):
            key = f"{prefix}#{i}"
            assert claim(key, now) == 200
            assert complete(key, now) == 200
            assert claim(key, now) == 400  # completed: the condition fails
        return (time.perf_counter() - started) * 1000 / (3 * keys)

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


if __name__ == "__main__":
    main()
