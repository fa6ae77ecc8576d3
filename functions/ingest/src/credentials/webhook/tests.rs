use lambda_http::http::HeaderValue;

use super::*;

const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const VECTOR_TS: i64 = 1_614_265_330;
const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
const VECTOR_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        (ID_HEADER, id),
        (TIMESTAMP_HEADER, ts),
        (SIGNATURE_HEADER, sig),
    ] {
        h.insert(k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn secret() -> Secret {
    Secret::parse(VECTOR_SECRET).unwrap()
}

#[test]
fn the_published_test_vector_signs_and_verifies() {
    assert_eq!(secret().sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY), VECTOR_SIG);
    let h = headers(VECTOR_ID, &VECTOR_TS.to_string(), VECTOR_SIG);
    assert_eq!(
        verify(&[secret()], &h, VECTOR_BODY, VECTOR_TS),
        Ok(VECTOR_ID)
    );
}

#[test]
fn a_freshly_signed_request_verifies_with_any_active_secret() {
    let old = Secret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    let new = Secret::parse("whsec_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB").unwrap();
    let now = 1_795_000_000;
    let body = br#"{"specversion":"1.0"}"#;
    // Rotation: the sender signs with both; the receiver may know either.
    let sig = format!(
        "{} {}",
        old.sign("msg_1", now, body),
        new.sign("msg_1", now, body)
    );
    let h = headers("msg_1", &now.to_string(), &sig);
    assert_eq!(
        verify(std::slice::from_ref(&new), &h, body, now + 10),
        Ok("msg_1")
    );
    assert_eq!(
        verify(std::slice::from_ref(&old), &h, body, now - 10),
        Ok("msg_1")
    );
    let other = Secret::parse("whsec_CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC").unwrap();
    assert_eq!(
        verify(&[other], &h, body, now),
        Err(SignatureError::Mismatch)
    );
    // A single changed byte of the body, the id or the timestamp breaks it.
    assert_eq!(
        verify(
            std::slice::from_ref(&new),
            &h,
            br#"{"specversion":"1.1"}"#,
            now
        ),
        Err(SignatureError::Mismatch)
    );
    let h2 = headers("msg_2", &now.to_string(), &new.sign("msg_1", now, body));
    assert_eq!(
        verify(&[new], &h2, body, now),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn each_broken_rule_has_its_own_error() {
    let ts = VECTOR_TS.to_string();
    let s = [secret()];
    let cases: Vec<(HeaderMap, SignatureError)> = vec![
        (headers(VECTOR_ID, &ts, "v1,"), SignatureError::Malformed),
        (
            headers(VECTOR_ID, &ts, "v1,AAAA"),
            SignatureError::Malformed,
        ),
        (
            headers(VECTOR_ID, &ts, "v1,g0hM9SsE+OTPJTGt"),
            SignatureError::Malformed,
        ),
        (
            headers(VECTOR_ID, &ts, "v1,not base64!"),
            SignatureError::Malformed,
        ),
        (
            headers(
                VECTOR_ID,
                &ts,
                "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            SignatureError::UnsupportedVersion,
        ),
        (
            headers(
                VECTOR_ID,
                &ts,
                "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
            SignatureError::UnsupportedVersion,
        ),
        (
            headers(VECTOR_ID, "yesterday", VECTOR_SIG),
            SignatureError::InvalidTimestamp,
        ),
        (
            headers(
                VECTOR_ID,
                &ts,
                "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
            SignatureError::Mismatch,
        ),
    ];
    for (h, want) in cases {
        assert_eq!(
            verify(&s, &h, VECTOR_BODY, VECTOR_TS),
            Err(want.clone()),
            "{want:?}"
        );
    }
    let h = headers(VECTOR_ID, &ts, VECTOR_SIG);
    assert_eq!(
        verify(&s, &h, VECTOR_BODY, VECTOR_TS + 301),
        Err(SignatureError::TimestampTooOld)
    );
    assert_eq!(
        verify(&s, &h, VECTOR_BODY, VECTOR_TS - 301),
        Err(SignatureError::TimestampInFuture)
    );
    assert!(
        verify(&s, &h, VECTOR_BODY, VECTOR_TS + 300).is_ok(),
        "the tolerance is inclusive"
    );
    assert_eq!(
        verify(&[], &h, VECTOR_BODY, VECTOR_TS),
        Err(SignatureError::NotConfigured)
    );
    for missing in [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER] {
        let mut h = headers(VECTOR_ID, &ts, VECTOR_SIG);
        h.remove(missing);
        assert_eq!(
            verify(&s, &h, VECTOR_BODY, VECTOR_TS),
            Err(SignatureError::MissingHeader(missing))
        );
    }
    // A valid signature next to a malformed one still verifies (the malformed one just never matches).
    let h = headers(VECTOR_ID, &ts, &format!("v1,AAAA {VECTOR_SIG}"));
    assert!(verify(&s, &h, VECTOR_BODY, VECTOR_TS).is_ok());
}

#[test]
fn secrets_must_be_whsec_base64_of_24_to_64_bytes() {
    assert!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    // 16 bytes: too short for the spec, refused at start rather than accepted with a weak key.
    assert!(Secret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAA==").is_err());
    assert!(Secret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 24]))).is_ok());
    assert!(Secret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 64]))).is_ok());
    assert!(Secret::parse(&format!("whsec_{}", STANDARD.encode([7u8; 65]))).is_err());
    assert!(Secret::parse("whsec_").is_err());
    assert!(Secret::parse("whsec_AAAA").is_err());
    assert!(Secret::parse("whsec_!!!!").is_err());
    assert_eq!(format!("{:?}", secret()), "Secret(…)");
}
