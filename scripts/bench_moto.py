"""moto's DynamoDB as the pipeline uses it, stock against `moto_server.py`'s caching (4. and 5.), in one process.

Each round does the same work twice, stock then patched, on fresh keys, with the requests tubes sends: an
idempotency claim of a new key (a conditional `PutItem`), a payment's debit (a `TransactWriteItems` of the
account's update and the decision's put), the claim's completion (a `PutItem`), and a claim of the completed key
(its condition fails). It prints the milliseconds per request of each, and the ratio. Requests go through moto's WSGI app in-process (no sockets), so
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

    for table, key in (("idempotency", "key"), ("ledger", "pk")):
        assert call("CreateTable", {
            "TableName": table,
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        }) == 200

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
