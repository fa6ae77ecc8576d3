"""moto's state kept in a file, so that the local stack's tables, queues, buckets and secrets survive a restart as
kinesis-local's streams and the mapping emulator's checkpoints do (`scripts/moto_server.py`, when
`TUBES_MOTO_STATE=FILE` is set; `make dev` sets it, `make reset` removes it with the rest of the state).

- What is kept: the backends of the services the local stack uses (DynamoDB, SQS, S3, Secrets Manager), pickled
  whole (a lock inside an SQS queue is written as a new lock).
- When: a second or so after a request that may have changed something (not after reads), and when moto is told
  to stop (SIGTERM, as `make dev` stops it). The interval grows with what a snapshot costs (at least 5 times its
  duration), so a large state does not eat moto's time. moto killed with SIGKILL loses what changed since the
  last snapshot.
- Consistency: DynamoDB requests run one at a time (moto_server.py, 1.); a snapshot takes the same lock, so it
  never holds half a transaction. Other services are read while they serve; a snapshot that meets a change in
  flight is taken again.
- A file this moto cannot read (another moto version, damaged) is moved aside to FILE.unreadable and moto starts
  empty, saying so: the stack then provisions its resources again.
"""

import copyreg
import io
import os
import pickle
import sys
import threading
import time

import moto
import moto.backends as backends

SERVICES = ("dynamodb", "sqs", "s3", "secretsmanager")
# Operations (X-Amz-Target's suffix) that change nothing: no snapshot after them.
_READS = frozenset(
    "GetItem BatchGetItem Query Scan DescribeTable ListTables TransactGetItems DescribeTimeToLive "
    "DescribeContinuousBackups ListTagsOfResource GetSecretValue DescribeSecret ListSecrets GetQueueUrl "
    "GetQueueAttributes ListQueues ListQueueTags".split()
)
_RLock = type(threading.RLock())
_Lock = type(threading.Lock())


def _dumps(value):
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = copyreg.dispatch_table.copy()
    pickler.dispatch_table[_RLock] = lambda _: (threading.RLock, ())
    pickler.dispatch_table[_Lock] = lambda _: (threading.Lock, ())
    pickler.dump(value)
    return buffer.getvalue()


class State:
    """The file, and the thread that writes it."""

    def __init__(self, path, lock):
        self.path = path
        self.lock = lock  # moto_server.py's DynamoDB lock
        self.dirty = threading.Event()
        self.interval = 1.0
        # Changes seen, and how many of them the file holds: a snapshot in flight when SIGTERM comes may have
        # missed the last ones, so stopping compares these rather than trusting `dirty`.
        self.changes = 0
        self.saved = 0
        self.saving = threading.Lock()

    def load(self):
        """Puts the saved backends back, if there is a file; before the server starts."""
        if not os.path.exists(self.path):
            return
        try:
            with open(self.path, "rb") as f:
                saved = pickle.load(f)
            if saved.get("moto") != moto.__version__:
                raise ValueError(f"written by moto {saved.get('moto')}, this is {moto.__version__}")
            for name, accounts in saved["backends"].items():
                backend = backends.get_backend(name)
                backend.clear()
                backend.update(accounts)
        except Exception as e:  # noqa: BLE001 - any unreadable file: start empty, and say so
            os.replace(self.path, self.path + ".unreadable")
            print(f"moto: could not read {self.path} ({e}); moved to {self.path}.unreadable, starting empty",
                  file=sys.stderr)

    def changed(self, environ):
        """Called per request: marks the state dirty unless the request only reads."""
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return
        if environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2] in _READS:
            return
        self.changes += 1
        self.dirty.set()

    def save(self):
        """Writes a snapshot (atomically: a temporary file, then a rename), one at a time."""
        with self.saving:
            self._save()

    def _save(self):
        for _ in range(20):
            try:
                with self.lock:
                    changes = self.changes
                    data = _dumps({"moto": moto.__version__,
                                   "backends": {n: dict(backends.get_backend(n)) for n in SERVICES}})
                break
            except RuntimeError:  # a dict changed size under the pickler: a request was being served; again
                time.sleep(0.01)
        else:
            print("moto: no consistent snapshot after 20 tries; will try again", file=sys.stderr)
            self.dirty.set()
            return
        with open(self.path + ".tmp", "wb") as out:
            out.write(data)
        os.replace(self.path + ".tmp", self.path)
        self.saved = changes

    def _run(self):
        while True:
            self.dirty.wait()
            time.sleep(self.interval)  # changes come in bursts: one snapshot for the burst
            self.dirty.clear()
            started = time.perf_counter()
            self.save()
            self.interval = max(1.0, 5 * (time.perf_counter() - started))

    def start(self):
        """Loads the file and starts the writer."""
        self.load()
        threading.Thread(target=self._run, name="moto-state", daemon=True).start()

    def stop(self, _signum, _frame):
        """moto's SIGTERM and SIGINT handler: saves what the file does not hold yet, then exits."""
        if self.saved != self.changes:
            self.save()
        sys.exit(0)
