"""moto's server (`moto_server`), with DynamoDB requests handled one at a time and transactions that cost what
they touch.

1. DynamoDB makes each conditional write, update and transaction atomic: of two claims racing for one item, one
   wins and the other's condition fails. moto's server is threaded and checks a condition, then writes, without a
   lock, so under concurrent requests both claims can pass (seen here: two of sixteen concurrent conditional
   `UpdateItem`s both won). Serialising DynamoDB requests restores DynamoDB's guarantee; SQS, Secrets Manager and
   the rest stay concurrent (an SQS long poll must not hold DynamoDB up).
2. moto's `TransactWriteItems` deep-copies every table it touches, once per item, to roll back on failure: its
   cost grows with the tables (seen here: 90 DynamoDB requests/s fell to 40 within 3,000 events, and a 100,000-event
   soak would spend seconds per payment). Here the transaction saves the items it touches instead, and puts them
   back if it fails: the same all-or-nothing outcome, as DynamoDB gives it, at the cost of the items themselves.
   This holds because DynamoDB requests run one at a time (1.), so nothing else sees the half-done state.
3. Per request, moto lists and stats its own package's ~150 folders to find the service, and the development
   server logs a line: DynamoDB requests go straight to the DynamoDB app, the folder list is read once, and only
   warnings and errors are logged: about 15 % less of moto's CPU per request (4.3 → 3.7 ms per `PutItem`/`GetItem`,
   five paired runs of 2,000 requests on a busy machine, spread ±0.6 ms).
4. A conditional `UpdateItem` (an idempotency claim) cost moto about 4 times a `GetItem`: it parses the update
   expression twice, and its validator walks the expression tree ten times, building each walker's node map again
   at every node it visits (twice: to test the node, then to process it). The parsed tree is cached by its text
   (moto copies it before changing it), and each walker builds its map once. `scripts/bench_moto.py` measures it,
   stock against patched in one process.
5. Per request, moto lists its response class's methods (`inspect.getmembers`) to find the action's: about 5 %
   of a request's time in a profile. The list depends only on the class, and is kept per class.
6. `TUBES_MOTO_TALLY=FILE` (in the environment of `make dev` or the soak): each DynamoDB operation's count, CPU
   seconds (the process's CPU while the request ran), seconds spent waiting for the lock of 1. and seconds holding
   it, written as JSON (`{"PutItem": [count, cpu, waited, held]}`) every 500 requests to FILE.PORT (PORT: the
   moto's `-p`): where moto's time goes.

Same arguments as `moto_server`.
"""

import copy
import functools
import json
import logging
import os
import sys
import threading
import time

import moto.dynamodb.models as dynamodb_models
import moto.backends as backends
import moto.core.responses as core_responses
import moto.server as server
from moto.dynamodb.models.table import Table
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser
from moto.dynamodb.parsing.expressions import UpdateExpressionParser

_dynamodb = threading.Lock()
# TUBES_MOTO_TALLY=FILE (see 6.): rewritten every 500 requests (the soak stops and kills moto, so there is no clean
# exit to wait for), one file per moto (the soak runs two): FILE.PORT.
_tally_path = os.environ.get("TUBES_MOTO_TALLY")
if _tally_path is not None and "-p" in sys.argv[:-1]:
    _tally_path += "." + sys.argv[sys.argv.index("-p") + 1]
_tally = {}


class _SerialDynamoDB(server.DomainDispatcherApplication):
    _dynamodb_app = None

    def __call__(self, environ, start_response):
        # The JSON protocol names the operation in X-Amz-Target: "DynamoDB_20120810.UpdateItem".
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            arrived = time.perf_counter()
            with _dynamodb:
                if self._dynamodb_app is None:
                    self._dynamodb_app = self.get_application(environ)
                # The whole response is built here (moto's Flask apps do not stream), under the lock.
                if _tally_path is None:
                    return self._dynamodb_app(environ, start_response)
                started, cpu = time.perf_counter(), time.process_time()
                answer = self._dynamodb_app(environ, start_response)
                _count(
                    environ["HTTP_X_AMZ_TARGET"].split(".")[-1],
                    time.process_time() - cpu,
                    started - arrived,
                    time.perf_counter() - started,
                )
                return answer
        return super().__call__(environ, start_response)


def _count(operation, cpu, waited, held):
    entry = _tally.setdefault(operation, [0, 0.0, 0.0, 0.0])
    entry[0] += 1
    entry[1] += cpu
    entry[2] += waited
    entry[3] += held
    if sum(e[0] for e in _tally.values()) % 500 == 0:
        with open(_tally_path + ".tmp", "w") as out:
            json.dump(_tally, out)
        os.replace(_tally_path + ".tmp", _tally_path)


class _NoTableCopies:
    """`copy` as moto's DynamoDB backend sees it: tables are not deep-copied (see 2.); anything else is."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _touched(backend, transact_items):
    """(table name, key, the item as it is now or None) for each item the transaction names."""
    saved = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = backend.get_table(op["TableName"])
            if op_type == "Put":
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            before = backend.get_item(op["TableName"], key)
        except Exception:  # noqa: BLE001 - moto's own validation reports a malformed entry
            continue
        saved.append((op["TableName"], key, None if before is None else before.to_json()["Attributes"]))
    return saved


def _transact_write_items_saving_items(self, transact_items):
    saved = _touched(self, transact_items)
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        # Put every touched item back as it was, last first.
        for table_name, key, before in reversed(saved):
            if before is None:
                if self.get_item(table_name, key) is not None:
                    self.delete_item(table_name, key)
            else:
                self.put_item(table_name, copy.deepcopy(before), overwrite=True)
        raise


_stock_walker = (DepthFirstTraverser.nodes_to_be_processed, DepthFirstTraverser.process)
_stock_make = UpdateExpressionParser.__dict__["make"]
_cached_make = functools.lru_cache(maxsize=1024)(UpdateExpressionParser.make)


def _node_map(walker):
    """The walker's node class → function map, built once per walker (see 4.)."""
    found = walker.__dict__.get("_tubes_node_map")
    if found is None:
        found = walker._tubes_node_map = walker._processing_map()
    return found


def _nodes_to_be_processed(walker):
    found = walker.__dict__.get("_tubes_node_types")
    if found is None:
        found = walker._tubes_node_types = tuple(_node_map(walker))
    return found


def _process(walker, node):
    for node_type, processor in _node_map(walker).items():
        if isinstance(node, node_type):
            return processor(node)
    return None


# The action's method is looked up by name in this list (see 5.): kept per class, as a set.
_method_names = core_responses.method_names_from_class
_cached_method_names = functools.lru_cache(maxsize=None)(lambda clazz: frozenset(_method_names(clazz)))


def cache_expressions(on=True):
    """Turns 4. and 5. on (the default here) or off (for `bench_moto.py`'s stock rounds)."""
    if on:
        DepthFirstTraverser.nodes_to_be_processed = _nodes_to_be_processed
        DepthFirstTraverser.process = _process
        UpdateExpressionParser.make = staticmethod(_cached_make)
        core_responses.method_names_from_class = _cached_method_names
    else:
        DepthFirstTraverser.nodes_to_be_processed, DepthFirstTraverser.process = _stock_walker
        UpdateExpressionParser.make = _stock_make
        core_responses.method_names_from_class = _method_names


_modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = functools.lru_cache(maxsize=None)(lambda: _modules)
logging.getLogger("werkzeug").setLevel(logging.WARNING)
dynamodb_models.copy = _NoTableCopies()
dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_saving_items
server.DomainDispatcherApplication = _SerialDynamoDB
cache_expressions()

if __name__ == "__main__":
    server.main()
