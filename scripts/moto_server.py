"""moto's server (`moto_server`), with DynamoDB requests handled one at a time.

DynamoDB makes each conditional write, update and transaction atomic: of two claims racing for one item, one
wins and the other's condition fails. moto's server is threaded and checks a condition, then writes, without a
lock, so under concurrent requests both claims can pass (seen here: two of sixteen concurrent conditional
`UpdateItem`s both won). Serialising DynamoDB requests restores DynamoDB's guarantee; SQS, Secrets Manager and
the rest stay concurrent (an SQS long poll must not hold DynamoDB up). Same arguments as `moto_server`.
"""

import threading

import moto.server as server

_dynamodb = threading.Lock()


class _SerialDynamoDB(server.DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        # The JSON protocol names the operation in X-Amz-Target: "DynamoDB_20120810.UpdateItem".
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with _dynamodb:
                # The whole response is built here (moto's Flask apps do not stream), under the lock.
                return super().__call__(environ, start_response)
        return super().__call__(environ, start_response)


server.DomainDispatcherApplication = _SerialDynamoDB

if __name__ == "__main__":
    server.main()
