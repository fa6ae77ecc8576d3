use super::*;

#[test]
fn every_shape_is_its_schema() {
    for ty in EventType::ALL {
        let (schema, _) = super::data_schema(*ty);
        let shape = Shape::of(*ty);
        assert_eq!(shape.type_name, ty.as_str());
        let properties = schema["properties"].as_object().unwrap();
        assert_eq!(shape.members.len(), properties.len(), "{ty:?}");
        assert!(
            shape.members.len() <= TRACKED,
            "{ty:?}: repetition and presence are tracked"
        );
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for member in &shape.members {
            assert!(properties.contains_key(&member.name));
            assert_eq!(member.required, required.contains(&member.name.as_str()));
            assert_ne!(
                member.kinds,
                Kinds::ANY,
                "{ty:?}.{}: the schema names its types",
                member.name
            );
            // The check looks at data's own members: a nested object's members would be left to serde (the
            // first problem only, and unknown ones ignored). Teach the shape to recurse before adding one.
            assert!(
                !member.kinds.contains(Kinds::OBJECT) && !member.kinds.contains(Kinds::ARRAY),
                "{ty:?}.{} is not a scalar",
                member.name
            );
        }
        let aggregate = &shape.members[shape.index(ty.aggregate_member()).unwrap()];
        assert!(
            aggregate.required && aggregate.kinds == Kinds::STRING,
            "{ty:?}"
        );
    }
}

#[test]
fn kinds_and_hints_are_read_from_the_schema() {
    let paid = Shape::of(EventType::PaymentFailed);
    let member = |name: &str| &paid.members[paid.index(name).unwrap()];
    assert_eq!(member("amount").kinds, Kinds::INTEGER);
    assert_eq!(
        member("amount").hint,
        "must be an integer from 1 to 1000000000000000"
    );
    assert_eq!(member("detail").kinds, Kinds::STRING.or(Kinds::NULL));
    assert!(!member("detail").required);
    // `reason` is a `$ref` to a `oneOf` of constants.
    assert_eq!(member("reason").kinds, Kinds::STRING);
    assert!(member("reason")
        .hint
        .starts_with("must be one of account_not_found, "));
    assert_eq!(member("failed_at").hint, TIMESTAMP_MESSAGE);
    // Required members first, in the struct's order.
    let names: Vec<&str> = paid.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "payment_id",
            "account_id",
            "amount",
            "currency",
            "payer_email",
            "reason",
            "failed_at",
            "detail"
        ]
    );
    let signup = Shape::of(EventType::UserSignedUp);
    let opt_in = &signup.members[signup.index("marketing_opt_in").unwrap()];
    assert_eq!((opt_in.kinds, opt_in.required), (Kinds::BOOLEAN, false));
}

#[test]
fn kinds_of_raw_values() {
    for (text, kind) in [
        ("null", Kinds::NULL),
        ("true", Kinds::BOOLEAN),
        ("false", Kinds::BOOLEAN),
        ("-12", Kinds::INTEGER),
        ("0", Kinds::INTEGER),
        ("12.0", Kinds::FRACTION),
        ("1e3", Kinds::FRACTION),
        ("1E-3", Kinds::FRACTION),
        (r#""1.5""#, Kinds::STRING),
        ("[1.5]", Kinds::ARRAY),
        (r#"{"a":1}"#, Kinds::OBJECT),
    ] {
        let raw: &RawValue = serde_json::from_str(text).unwrap();
        assert_eq!(Kinds::of_raw(raw), kind, "{text}");
    }
    assert_eq!(Kinds::STRING.or(Kinds::NULL).describe(), "a string or null");
    assert_eq!(Kinds::INTEGER.or(Kinds::FRACTION).describe(), "a number");
    assert_eq!(Kinds::of_type_name("number").describe(), "a number");
    assert_eq!(Kinds::INTEGER.describe(), "an integer");
}

#[test]
fn raw_values_are_captured_without_surrounding_space() {
    // `Kinds::of_raw` reads the first byte: the capture must start at the value.
    let members = members_of("{ \"a\" :\n\t 12.5 , \"b\":  null }");
    let kinds: Vec<Kinds> = members.iter().map(|(_, raw)| Kinds::of_raw(raw)).collect();
    assert_eq!(kinds, [Kinds::FRACTION, Kinds::NULL]);
}
