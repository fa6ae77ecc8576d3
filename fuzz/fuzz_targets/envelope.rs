//! The edge parser and the consumer-side decoder on arbitrary bytes: no panic, and whatever parses survives the
//! record codec unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tubes_contract::{codec, Envelope};

fuzz_target!(|data: &[u8]| {
    let now = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
    if let Ok(envelope) = Envelope::parse(data, now) {
        let record = codec::encode(&envelope).expect("an accepted event encodes");
        let back = codec::decode(&record.data).expect("and decodes");
        assert_eq!(back.event(), envelope.event());
        assert_eq!(back.id(), envelope.id());
    }
    let _ = codec::decode(data);
});
