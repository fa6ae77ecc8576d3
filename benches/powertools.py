"""The consumer's decode against Powertools for AWS Lambda (Python)'s parser, on the same file (`make bench-powertools`).

Powertools' Kinesis parser is pydantic: `KinesisDataStreamModel` (each record's `data` base64-decoded by a
validator) and `KinesisDataStreamEnvelope`, which validates each record's data as JSON into the user's model with a
`TypeAdapter`. Powertools itself is not installable here (no network), so its models are rebuilt below with the
same fields, validators and calls, over pydantic 2 (whose core is native code, as it is under Powertools). The
user's model is the `payment.received` CloudEvent with the checks tubes makes of it (identifier lengths and
characters, a positive amount, a currency code, an e-mail address).

Rounds interleave: Python parses the file, then `decode_payload time` decodes it in Rust (and parses it with bare
serde_json, the baseline of `make bench ARGS=consumer`); the figure is the median over rounds of Python's time over
Rust's, each the mean of the round's iterations.
"""

import argparse
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import List, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from typing_extensions import Annotated

# As tubes checks them (tubes_contract::validate): printable ASCII identifiers, an e-mail address, a currency code.
Id = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[!-~]+$")]
Email = Annotated[
    str,
    Field(
        max_length=254,
        pattern=r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@"
        r"([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+([A-Za-z]{2,}|xn--[A-Za-z0-9-]+)$",
    ),
]


class KinesisDataStreamRecordPayload(BaseModel):
    """Powertools' `KinesisDataStreamRecordPayload`."""

    kinesisSchemaVersion: str
    partitionKey: str
    sequenceNumber: str
    data: bytes
    approximateArrivalTimestamp: float

    @field_validator("data", mode="before")
    @classmethod
    def data_base64_decode(cls, value):
        return base64.b64decode(value)


class KinesisDataStreamRecord(BaseModel):
    """Powertools' `KinesisDataStreamRecord`."""

    eventSource: Literal["aws:kinesis"]
    eventVersion: str
    eventID: str
    eventName: Literal["aws:kinesis:record"]
    invokeIdentityArn: str
    awsRegion: str
    eventSourceARN: str
    kinesis: KinesisDataStreamRecordPayload


class KinesisDataStreamModel(BaseModel):
    """Powertools' `KinesisDataStreamModel`."""

    Records: List[KinesisDataStreamRecord]


class Payment(BaseModel):
    """`payment.received`'s data."""

    model_config = ConfigDict(extra="ignore")
    payment_id: Id
    account_id: Id
    amount: Annotated[int, Field(gt=0, le=100_000_000_000)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    payer_email: Email


class PaymentReceived(BaseModel):
    """The CloudEvent a consumer of `payment.received` receives."""

    specversion: Literal["1.0"]
    id: Id
    source: Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[!-~]+$")]
    type: Literal["payment.received"]
    subject: Id
    time: datetime
    datacontenttype: Optional[str] = None
    data: Payment


class PlainPayment(BaseModel):
    """`payment.received`'s data with plain types only: the least a model can check."""

    payment_id: str
    account_id: str
    amount: int
    currency: str
    payer_email: str


class PlainPaymentReceived(BaseModel):
    """The CloudEvent with plain types only."""

    specversion: str
    id: str
    source: str
    type: str
    subject: str
    time: datetime
    datacontenttype: Optional[str] = None
    data: PlainPayment


CHECKED = TypeAdapter(PaymentReceived)
PLAIN = TypeAdapter(PlainPaymentReceived)


def powertools_parse(payload: bytes, model: TypeAdapter = CHECKED) -> list:
    """What `parse(event, model=..., envelope=envelopes.KinesisDataStreamEnvelope)` does."""
    event = KinesisDataStreamModel.model_validate_json(payload)
    return [model.validate_json(record.kinesis.data.decode("utf-8")) for record in event.Records]


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--bin", required=True, help="the decode_payload binary (release build)")
    args.add_argument("--rounds", type=int, default=11)
    args.add_argument("--iterations", type=int, default=3)
    opts = args.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kinesis-event.json"
        subprocess.run([opts.bin, "write", str(path)], check=True)
        payload = path.read_bytes()
        events = powertools_parse(payload)
        # Sanity: Python reads every record as the payment it is, or the figure means nothing.
        assert len(events) == 10_000 and events[7].data.payment_id == "pay_7", events[:1]

        assert powertools_parse(payload, PLAIN)[7].data.payment_id == "pay_7"

        def timed(model: TypeAdapter) -> float:
            start = time.perf_counter()
            for _ in range(opts.iterations):
                powertools_parse(payload, model)
            return (time.perf_counter() - start) / opts.iterations

        ratios, plain_ratios, rust_ratios, py_times, plain_times, rust_times = [], [], [], [], [], []
        for _ in range(max(opts.rounds, 1)):
            py, plain = timed(CHECKED), timed(PLAIN)
            out = subprocess.run(
                [opts.bin, "time", str(path), str(opts.iterations)], check=True, capture_output=True, text=True
            ).stdout
            rust = json.loads(out)
            assert rust["records"] == 10_000, rust
            ratios.append(py / rust["decode_s"])
            plain_ratios.append(plain / rust["decode_s"])
            plain_times.append(plain)
            rust_ratios.append(rust["decode_s"] / rust["serde_json_s"])
            py_times.append(py)
            rust_times.append(rust["decode_s"])

    print(f"payload: {len(payload) / 1e6:.1f} MB, 10,000 payment.received records, {opts.rounds} rounds")
    version = __import__("pydantic").VERSION
    print(f"Powertools' parser models (pydantic {version}), tubes' checks: {statistics.median(py_times) * 1e3:.1f} ms")
    print(f"Powertools' parser models (pydantic {version}), plain types:   {statistics.median(plain_times) * 1e3:.1f} ms")
    print(f"tubes' decode (KinesisBatch::from_payload, its checks):        {statistics.median(rust_times) * 1e3:.1f} ms"
          f" ({statistics.median(rust_ratios):.2f}x bare serde_json)")
    for name, r in (("tubes' checks", ratios), ("plain types", plain_ratios)):
        print(f"tubes is {statistics.median(r):.1f}x faster than the models with {name}"
              f" (median of rounds; min {min(r):.1f}x, max {max(r):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
