"""moto's server (`moto_server`), with DynamoDB requests handled one at a time, transactions that cost what they
touch, and connections kept open.

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
7. Through moto's Flask app, a DynamoDB request went through routing, CORS and Flask's request and response
   hooks before it reached moto's DynamoDB handler: it is called directly, as moto's Flask view calls it.
8. werkzeug's development server closes the connection after every answer (a new TCP connection and a new thread
   per request, on both sides) and, after each answer, waits up to 10 ms for stray request bytes. Here a request
   with a `Content-Length` is answered over HTTP/1.1 keep-alive: its body is read whole before the app runs (so
   the next request starts where it should whatever the app reads), the answer goes out in one write with its
   length, and the connection stays open. Chunked requests and `Expect: 100-continue` keep werkzeug's way.
   With 7., moto's CPU per `PutItem` over HTTP fell from 4.2 to 1.9 ms (four clients, 2,400 requests each way).
9. moto parses a condition expression twice per request (once to validate the request, once to apply it), and a
   transaction's three times per item: half of a debit's `TransactWriteItems` went to lexing conditions. The tree
   is kept per expression text, names and values (moto does not change it); a claim's `attribute_not_exists(#k)`
   is parsed once for all requests.
10. `TUBES_MOTO_STATE=FILE`: the state is kept in FILE and read back at start (`scripts/moto_state.py`).

Same arguments as `moto_server`.
"""

import copy
import functools
import io
import json
import logging
import os
import sys
import threading
import time
import traceback

import moto.dynamodb.models as dynamodb_models
import moto.backends as backends
import moto.core.responses as core_responses
import moto.server as server
from botocore.exceptions import ClientError
from moto.core.request import Request
from moto.dynamodb.responses import DynamoHandler
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.wrappers import Response
from moto.dynamodb.comparisons import ConditionExpressionParser
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
# TUBES_MOTO_STATE=FILE (see 10.).
_state = None


class _ServerRequest(Request):
    from_wsgi_server = True


def _dynamodb_app(environ, start_response):
    """moto's DynamoDB handler, called as moto's Flask view calls it, without Flask (see 7.)."""
    request = _ServerRequest(environ)
    try:
        status, headers, body = DynamoHandler.dispatch(request, request.raw_url, dict(request.headers))
    except ClientError as e:
        status, headers, body = 400, {}, e.response["Error"]["Message"]
    return Response(body, status=status, headers=headers)(environ, start_response)


class _SerialDynamoDB(server.DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        if _state is not None:
            _state.changed(environ)
        # The JSON protocol names the operation in X-Amz-Target: "DynamoDB_20120810.UpdateItem".
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            arrived = time.perf_counter()
            with _dynamodb:
                # The whole response is built here (moto's DynamoDB handler does not stream), under the lock.
                if _tally_path is None:
                    return _dynamodb_app(environ, start_response)
                started, cpu = time.perf_counter(), time.process_time()
                answer = _dynamodb_app(environ, start_response)
                _count(
                    environ["HTTP_X_AMZ_TARGET"].split(".")[-1],
                    time.process_time() - cpu,
                    started - arrived,
                    time.perf_counter() - started,
                )
                return answer
        return super().__call__(environ, start_response)


class _KeepAlive(MotoRequestHandler):
    """moto's request handler, answering over HTTP/1.1 keep-alive (see 8.)."""

    def log_request(self, code="-", size="-"):
        pass  # only warnings and errors are logged (see 3.); skip building the line

    def run_wsgi(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower() or "Expect" in self.headers:
            return super().run_wsgi()  # werkzeug's own: answers, then closes the connection
        # The body is read whole before the app runs, so whatever the app reads, the next request starts here.
        length = int(self.headers.get("Content-Length") or 0)
        environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(self.rfile.read(length) if length > 0 else b"")
        answer = []
        chunks = []

        def start_response(status, headers, exc_info=None):
            answer[:] = [status, headers]
            return chunks.append

        try:
            iterable = self.server.app(environ, start_response)
            try:
                chunks.extend(iterable)
            finally:
                if hasattr(iterable, "close"):
                    iterable.close()
            status, headers = answer
        except Exception:  # noqa: BLE001 - as werkzeug's: a 500, the traceback in moto's log
            self.server.log("error", "Error on request:\n" + traceback.format_exc())
            status, headers, chunks = "500 Internal Server Error", [], []
            self.close_connection = True
        body = b"".join(chunks)
        code, _, reason = status.partition(" ")
        code = int(code)
        try:
            self.send_response(code, reason)
            for key, value in headers:
                if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                    self.send_header(key, value)
                elif key.lower() == "content-length" and self.command == "HEAD":
                    self.send_header(key, value)  # a HEAD answer's length is the resource's, not the empty body's
            if self.command != "HEAD" and not (100 <= code < 200 or code in (204, 304)):
                self.send_header("Content-Length", str(len(body)))
            else:
                body = b""
            # Head and body in one write: two would wait for the client's delayed ACK (Nagle) on a kept connection.
            self._headers_buffer.extend((b"\r\n", body))
            self.flush_headers()
        except (ConnectionError, TimeoutError):
            self.close_connection = True


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


_stock_condition_parse = ConditionExpressionParser.parse
_conditions = {}


def _cached_condition_parse(parser):
    """A condition's tree, parsed once per expression, names and values (see 9.)."""
    key = (
        parser.condition_expression,
        repr(parser.expression_attribute_names),
        repr(parser.expression_attribute_values),
    )
    found = _conditions.get(key)
    if found is None:
        # A malformed condition raises here, every time: only parsed trees are kept.
        tree = _stock_condition_parse(parser)
        if len(_conditions) >= 1024:
            _conditions.pop(next(iter(_conditions)))
        found = _conditions[key] = (tree, tuple(parser.expr_attr_names_found), tuple(parser.expr_attr_values_found))
    else:
        parser.expr_attr_names_found.extend(found[1])
        parser.expr_attr_values_found.extend(found[2])
    return found[0]


# The action's method is looked up by name in this list (see 5.): kept per class, as a set.
_method_names = core_responses.method_names_from_class
_cached_method_names = functools.lru_cache(maxsize=None)(lambda clazz: frozenset(_method_names(clazz)))


def cache_expressions(on=True):
    """Turns 4., 5. and 9. on (the default here) or off (for `bench_moto.py`'s stock rounds)."""
    if on:
        DepthFirstTraverser.nodes_to_be_processed = _nodes_to_be_processed
        DepthFirstTraverser.process = _process
        UpdateExpressionParser.make = staticmethod(_cached_make)
        core_responses.method_names_from_class = _cached_method_names
        ConditionExpressionParser.parse = _cached_condition_parse
    else:
        DepthFirstTraverser.nodes_to_be_processed, DepthFirstTraverser.process = _stock_walker
        UpdateExpressionParser.make = _stock_make
        core_responses.method_names_from_class = _method_names
        ConditionExpressionParser.parse = _stock_condition_parse


_modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = functools.lru_cache(maxsize=None)(lambda: _modules)
logging.getLogger("werkzeug").setLevel(logging.WARNING)
dynamodb_models.copy = _NoTableCopies()
dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_saving_items
server.DomainDispatcherApplication = _SerialDynamoDB
server.MotoRequestHandler = _KeepAlive
cache_expressions()

if __name__ == "__main__":
    if os.environ.get("TUBES_MOTO_STATE"):
        import moto_state  # next to this script

        _state = moto_state.State(os.environ["TUBES_MOTO_STATE"], _dynamodb)
        _state.start()
        server.signal_handler = _state.stop  # moto's own only exits
    server.main()
