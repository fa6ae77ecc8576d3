use serde_json::json;

use super::*;

fn template(esm: Value) -> Value {
    json!({"Resources": {
        "S": {"Type": "AWS::Kinesis::Stream", "Metadata": {"tubes": {"LocalShardCount": 3}}, "Properties": {}},
        "Q": {"Type": "AWS::SQS::Queue"},
        "F": {"Type": "AWS::Lambda::Function", "Metadata": {"BuildProperties": {"Binary": "bin-f"}},
              "Properties": {"Timeout": 30, "Environment": {"Variables": {"STREAM": {"Ref": "S"}}}}},
        "M": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": esm},
    }})
}

#[test]
fn tables_keep_their_partition_key_and_ttl_attribute() {
    let template = json!({"Resources": {
        "T": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "KeySchema": [{"AttributeName": "key", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": true}}},
        "U": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "gone", "Enabled": false}}},
        "V": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]}}}});
    let err = App::from_template(&template).unwrap_err();
    assert!(err.to_string().contains("only a partition key"), "{err}");
    let mut template = template;
    template["Resources"].as_object_mut().unwrap().remove("V");
    let app = App::from_template(&template).unwrap();
    let by_id = |id: &str| app.tables.iter().find(|t| t.logical_id == id).unwrap();
    assert_eq!(by_id("T").partition_key, "key");
    assert_eq!(by_id("T").ttl_attribute.as_deref(), Some("expires_at"));
    assert_eq!(by_id("U").ttl_attribute, None, "TTL declared but disabled");
}

#[test]
fn reads_every_setting_of_a_kinesis_mapping() {
    let t = template(json!({
        "EventSourceArn": {"Fn::GetAtt": ["S", "Arn"]}, "FunctionName": {"Ref": "F"},
        "StartingPosition": "TRIM_HORIZON", "BatchSize": 10, "MaximumBatchingWindowInSeconds": 2,
        "ParallelizationFactor": 4, "BisectBatchOnFunctionError": true, "MaximumRetryAttempts": 3,
        "MaximumRecordAgeInSeconds": 3600, "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Q", "Arn"]}}},
        "FilterCriteria": {"Filters": [{"Pattern": "{\"data\": {\"type\": [\"a\"]}}"}]}
    }));
    let app = App::from_template(&t).unwrap();
    assert_eq!(app.streams[0].shard_count, 3);
    assert_eq!(app.functions[0].binary, "bin-f");
    assert_eq!(app.functions[0].timeout, Duration::from_secs(30));
    let m = &app.mappings[0];
    assert_eq!(
        (
            m.function.as_str(),
            m.stream.as_str(),
            m.batch_size,
            m.parallelization_factor
        ),
        ("F", "S", 10, 4)
    );
    assert_eq!(m.batching_window, Duration::from_secs(2));
    assert_eq!(m.starting_position, StartingPosition::TrimHorizon);
    assert_eq!(
        m.policy,
        RetryPolicy {
            bisect: true,
            max_retry_attempts: Some(3),
            max_record_age: Some(Duration::from_secs(3600)),
            report_batch_item_failures: true
        }
    );
    assert_eq!(m.on_failure.as_deref(), Some("Q"));
    assert_eq!(m.filters.len(), 1);
}

#[test]
fn refuses_what_aws_refuses() {
    let base = json!({"EventSourceArn": {"Fn::GetAtt": ["S", "Arn"]}, "FunctionName": {"Ref": "F"},
                      "StartingPosition": "LATEST"});
    for (k, v, prop) in [
        ("BatchSize", json!(10_001), "BatchSize"),
        ("ParallelizationFactor", json!(11), "ParallelizationFactor"),
        (
            "MaximumRecordAgeInSeconds",
            json!(30),
            "MaximumRecordAgeInSeconds",
        ),
        ("StartingPosition", json!("OLDEST"), "StartingPosition"),
    ] {
        let mut p = base.clone();
        p[k] = v;
        match App::from_template(&template(p)) {
            Err(TemplateError::Property { property, .. }) => assert_eq!(property, prop),
            other => panic!("{k}: {other:?}"),
        }
    }
    let mut p = base.clone();
    p["FilterCriteria"] = json!({"Filters": [{"Pattern": "{\"data\": 1}"}]});
    assert!(matches!(
        App::from_template(&template(p)),
        Err(TemplateError::Filter { .. })
    ));
    // Defaults as AWS documents them.
    let app = App::from_template(&template(base)).unwrap();
    let m = &app.mappings[0];
    assert_eq!(
        (
            m.batch_size,
            m.parallelization_factor,
            m.policy.max_retry_attempts
        ),
        (100, 1, None)
    );
    assert!(!m.policy.report_batch_item_failures && !m.policy.bisect && m.enabled);
}
