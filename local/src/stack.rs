//! Provisioning: the template's streams, queues, secrets, tables and buckets on the local emulators, created idempotently, and each
//! function's environment with its intrinsics resolved to them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use crate::app::{target, App, Table};

/// A provisioning step failed.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// An emulator call failed: the call and its error ([`tubes_platform::aws::describe`]).
    #[error("{0}")]
    Aws(String),
    /// The template needs something this stack does not run.
    #[error("{0}")]
    Unsupported(String),
}

fn aws(what: impl Into<String>, e: impl std::error::Error) -> StackError {
    StackError::Aws(tubes_platform::aws::describe(&what.into(), e))
}

/// The local names of the template's resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// Logical id → (stream name, stream ARN).
    pub streams: BTreeMap<String, (String, String)>,
    /// Logical id → (queue URL, queue ARN).
    pub queues: BTreeMap<String, (String, String)>,
    /// Logical id → secret ARN.
    pub secrets: BTreeMap<String, String>,
    /// Logical id → (table name, table ARN).
    pub tables: BTreeMap<String, (String, String)>,
    /// Logical id → bucket name.
    pub buckets: BTreeMap<String, String>,
}

/// The emulators' clients; the optional ones exist when their endpoint is configured.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Kinesis (always needed).
    pub kinesis: aws_sdk_kinesis::Client,
    /// SQS, for queues.
    pub sqs: Option<aws_sdk_sqs::Client>,
    /// Secrets Manager, for secrets.
    pub secrets: Option<aws_sdk_secretsmanager::Client>,
    /// DynamoDB, for tables.
    pub dynamodb: Option<aws_sdk_dynamodb::Client>,
    /// S3, for buckets (addressed by path: the emulator has no host name per bucket).
    pub s3: Option<aws_sdk_s3::Client>,
}

impl Clients {
    /// Clients from the environment: `AWS_ENDPOINT_URL_KINESIS`, `_SQS`, `_SECRETS_MANAGER`, `_DYNAMODB`, `_S3`.
    pub async fn from_env() -> Self {
        let config = aws_config::load_from_env().await;
        let configured = |var: &str| std::env::var_os(var).is_some();
        Self {
            kinesis: aws_sdk_kinesis::Client::new(&config),
            sqs: configured("AWS_ENDPOINT_URL_SQS").then(|| aws_sdk_sqs::Client::new(&config)),
            secrets: configured("AWS_ENDPOINT_URL_SECRETS_MANAGER")
                .then(|| aws_sdk_secretsmanager::Client::new(&config)),
            dynamodb: configured("AWS_ENDPOINT_URL_DYNAMODB")
                .then(|| aws_sdk_dynamodb::Client::new(&config)),
            s3: configured("AWS_ENDPOINT_URL_S3").then(|| {
                aws_sdk_s3::Client::from_conf(
                    aws_sdk_s3::config::Builder::from(&config)
                        .force_path_style(true)
                        .build(),
                )
            }),
        }
    }
}

/// The local name of a resource: `{prefix}-{LogicalId}`.
pub fn local_name(prefix: &str, logical_id: &str) -> String {
    format!("{prefix}-{logical_id}")
}

/// The local name of a bucket: [`local_name`] in lower case, as S3 bucket names must be.
pub fn bucket_name(prefix: &str, logical_id: &str) -> String {
    local_name(prefix, logical_id).to_ascii_lowercase()
}

/// Creates what is missing; leaves what exists (and its data) alone.
pub async fn provision(app: &App, prefix: &str, clients: &Clients) -> Result<Resolved, StackError> {
    let kinesis = &clients.kinesis;
    let mut resolved = Resolved::default();
    for stream in &app.streams {
        let name = local_name(prefix, &stream.logical_id);
        let summary = match kinesis
            .describe_stream_summary()
            .stream_name(&name)
            .send()
            .await
        {
            Ok(s) => s,
            Err(_) => {
                kinesis
                    .create_stream()
                    .stream_name(&name)
                    .shard_count(stream.shard_count)
                    .send()
                    .await
                    .map_err(|e| aws(format!("CreateStream {name}"), e))?;
                wait_active(kinesis, &name).await?
            }
        };
        let arn = summary
            .stream_description_summary()
            .map(|s| s.stream_arn().to_owned())
            .unwrap_or_default();
        resolved
            .streams
            .insert(stream.logical_id.clone(), (name, arn));
    }
    if !app.queues.is_empty() {
        let sqs = clients.sqs.as_ref().ok_or_else(|| {
            StackError::Unsupported(
                "the template declares queues: start the SQS emulator (AWS_ENDPOINT_URL_SQS)"
                    .into(),
            )
        })?;
        for queue in &app.queues {
            let name = local_name(prefix, &queue.logical_id);
            let url = sqs
                .create_queue()
                .queue_name(&name)
                .send()
                .await
                .map_err(|e| aws(format!("CreateQueue {name}"), e))?
                .queue_url()
                .unwrap_or_default()
                .to_owned();
            let attrs = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::QueueArn)
                .send()
                .await
                .map_err(|e| aws(format!("GetQueueAttributes {name}"), e))?;
            let arn = attrs
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::QueueArn))
                .cloned()
                .unwrap_or_default();
            resolved.queues.insert(queue.logical_id.clone(), (url, arn));
        }
    }
    if !app.secrets.is_empty() {
        let sm = clients.secrets.as_ref().ok_or_else(|| {
            StackError::Unsupported(
                "the template declares secrets: start the Secrets Manager emulator \
                 (AWS_ENDPOINT_URL_SECRETS_MANAGER)"
                    .into(),
            )
        })?;
        for secret in &app.secrets {
            let name = local_name(prefix, &secret.logical_id);
            // An existing secret keeps its value: a developer may have put real sources in it.
            let arn = match sm.describe_secret().secret_id(&name).send().await {
                Ok(d) => d.arn().unwrap_or_default().to_owned(),
                Err(_) => sm
                    .create_secret()
                    .name(&name)
                    .secret_string(secret.initial.clone().unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| aws(format!("CreateSecret {name}"), e))?
                    .arn()
                    .unwrap_or_default()
                    .to_owned(),
            };
            resolved.secrets.insert(secret.logical_id.clone(), arn);
        }
    }
    if !app.tables.is_empty() {
        let ddb = clients.dynamodb.as_ref().ok_or_else(|| {
            StackError::Unsupported(
                "the template declares tables: start the DynamoDB emulator (AWS_ENDPOINT_URL_DYNAMODB)"
                    .into(),
            )
        })?;
        for table in &app.tables {
            resolved.tables.insert(
                table.logical_id.clone(),
                provision_table(ddb, prefix, table).await?,
            );
        }
    }
    if !app.buckets.is_empty() {
        let s3 = clients.s3.as_ref().ok_or_else(|| {
            StackError::Unsupported(
                "the template declares buckets: start the S3 emulator (AWS_ENDPOINT_URL_S3)".into(),
            )
        })?;
        for bucket in &app.buckets {
            let name = bucket_name(prefix, &bucket.logical_id);
            // An existing bucket keeps its objects (the event store survives a restart of the stack).
            if s3.head_bucket().bucket(&name).send().await.is_err() {
                s3.create_bucket()
                    .bucket(&name)
                    .send()
                    .await
                    .map_err(|e| aws(format!("CreateBucket {name}"), e))?;
            }
            resolved.buckets.insert(bucket.logical_id.clone(), name);
        }
    }
    Ok(resolved)
}

/// Creates a table if it is missing (its data survives restarts of the stack as long as the emulator does).
async fn provision_table(
    ddb: &aws_sdk_dynamodb::Client,
    prefix: &str,
    table: &Table,
) -> Result<(String, String), StackError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    let name = local_name(prefix, &table.logical_id);
    let built = |e: aws_sdk_dynamodb::error::BuildError| StackError::Unsupported(e.to_string());
    let arn = match ddb.describe_table().table_name(&name).send().await {
        Ok(d) => d
            .table()
            .and_then(|t| t.table_arn())
            .unwrap_or_default()
            .to_owned(),
        Err(_) => {
            let created = ddb
                .create_table()
                .table_name(&name)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(&table.partition_key)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(built)?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(&table.partition_key)
                        .key_type(KeyType::Hash)
                        .build()
                        .map_err(built)?,
                )
                .send()
                .await
                .map_err(|e| aws(format!("CreateTable {name}"), e))?;
            if let Some(attr) = &table.ttl_attribute {
                ddb.update_time_to_live()
                    .table_name(&name)
                    .time_to_live_specification(
                        TimeToLiveSpecification::builder()
                            .attribute_name(attr)
                            .enabled(true)
                            .build()
                            .map_err(built)?,
                    )
                    .send()
                    .await
                    .map_err(|e| aws(format!("UpdateTimeToLive {name}"), e))?;
            }
            created
                .table_description()
                .and_then(|t| t.table_arn())
                .unwrap_or_default()
                .to_owned()
        }
    };
    Ok((name, arn))
}

async fn wait_active(
    kinesis: &aws_sdk_kinesis::Client,
    name: &str,
) -> Result<
    aws_sdk_kinesis::operation::describe_stream_summary::DescribeStreamSummaryOutput,
    StackError,
> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = kinesis
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| aws(format!("DescribeStreamSummary {name}"), e))?;
        let active = s
            .stream_description_summary()
            .is_some_and(|d| d.stream_status() == &aws_sdk_kinesis::types::StreamStatus::Active);
        if active {
            return Ok(s);
        }
        if Instant::now() > deadline {
            return Err(StackError::Unsupported(format!(
                "stream {name} did not become ACTIVE in 30 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One value of a function's environment, resolved locally.
fn resolve(value: &Value, app: &App, resolved: &Resolved) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => {
            let id = target(value)?;
            let is_ref = value.get("Ref").is_some();
            if let Some(p) = app.parameters.get(id) {
                return resolve(p, app, resolved);
            }
            let attr = value
                .pointer("/Fn::GetAtt/1")
                .and_then(Value::as_str)
                .unwrap_or("Arn");
            if let Some((name, arn)) = resolved.streams.get(id) {
                return Some(if is_ref { name.clone() } else { arn.clone() });
            }
            if let Some((name, arn)) = resolved.tables.get(id) {
                return Some(if is_ref { name.clone() } else { arn.clone() });
            }
            if let Some(name) = resolved.buckets.get(id) {
                return Some(if is_ref {
                    name.clone()
                } else {
                    format!("arn:aws:s3:::{name}")
                });
            }
            if let Some(arn) = resolved.secrets.get(id) {
                // Both `Ref` and `Fn::GetAtt .Id` of a secret are its ARN.
                return Some(arn.clone());
            }
            if let Some((url, arn)) = resolved.queues.get(id) {
                return Some(match (is_ref, attr) {
                    (true, _) => url.clone(),
                    (false, "QueueUrl") => url.clone(),
                    (false, _) => arn.clone(),
                });
            }
            None
        }
    }
}

/// The environment of every function, merged (`cargo lambda watch` gives all functions one environment).
/// A variable that differs between functions, or that cannot be resolved locally, is an error.
pub fn environment(app: &App, resolved: &Resolved) -> Result<BTreeMap<String, String>, StackError> {
    let mut env = BTreeMap::new();
    for f in &app.functions {
        for (key, value) in &f.environment {
            let v = resolve(value, app, resolved).ok_or_else(|| {
                StackError::Unsupported(format!(
                    "{}: cannot resolve {key} = {value} locally",
                    f.logical_id
                ))
            })?;
            if let Some(prev) = env.insert(key.clone(), v.clone()) {
                if prev != v {
                    return Err(StackError::Unsupported(format!(
                        "{key} differs between functions ({prev} / {v}); locally all functions share one environment"
                    )));
                }
            }
        }
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn resolves_refs_and_attributes_to_local_resources() {
        let t = json!({"Parameters": {"Level": {"Type": "String", "Default": "INFO"}}, "Resources": {
            "S": {"Type": "AWS::Kinesis::Stream"}, "Q": {"Type": "AWS::SQS::Queue"},
            "K": {"Type": "AWS::SecretsManager::Secret", "Properties": {"SecretString": "{}"}},
            "B": {"Type": "AWS::S3::Bucket"},
            "F": {"Type": "AWS::Lambda::Function", "Metadata": {"BuildProperties": {"Binary": "f"}},
                  "Properties": {"Environment": {"Variables": {
                      "STREAM": {"Ref": "S"}, "STREAM_ARN": {"Fn::GetAtt": ["S", "Arn"]}, "QUEUE": {"Ref": "Q"},
                      "LEVEL": {"Ref": "Level"}, "N": 3, "SECRET": {"Ref": "K"}, "BUCKET": {"Ref": "B"},
                      "BUCKET_ARN": {"Fn::GetAtt": ["B", "Arn"]}}}}},
            "G": {"Type": "AWS::Lambda::Function", "Metadata": {"BuildProperties": {"Binary": "g"}},
                  "Properties": {"Environment": {"Variables": {"STREAM": {"Ref": "S"}}}}}}});
        let app = App::from_template(&t).unwrap();
        assert_eq!(app.secrets[0].initial.as_deref(), Some("{}"));
        assert_eq!(app.buckets[0].logical_id, "B");
        let mut r = Resolved::default();
        r.buckets.insert("B".into(), bucket_name("tubes", "B"));
        r.secrets.insert("K".into(), "arn:k".into());
        r.streams
            .insert("S".into(), ("tubes-S".into(), "arn:s".into()));
        r.queues
            .insert("Q".into(), ("http://q".into(), "arn:q".into()));
        let env = environment(&app, &r).unwrap();
        assert_eq!(env["STREAM"], "tubes-S");
        assert_eq!(env["STREAM_ARN"], "arn:s");
        assert_eq!(env["QUEUE"], "http://q");
        assert_eq!(env["LEVEL"], "INFO");
        assert_eq!(env["N"], "3");
        assert_eq!(env["SECRET"], "arn:k");
        assert_eq!(env["BUCKET"], "tubes-b");
        assert_eq!(env["BUCKET_ARN"], "arn:aws:s3:::tubes-b");
    }

    #[test]
    fn conflicting_or_unresolvable_variables_are_errors() {
        let t = |v: Value| {
            json!({"Resources": {
                "F": {"Type": "AWS::Lambda::Function", "Metadata": {"BuildProperties": {"Binary": "f"}},
                      "Properties": {"Environment": {"Variables": {"X": "1"}}}},
                "G": {"Type": "AWS::Lambda::Function", "Metadata": {"BuildProperties": {"Binary": "g"}},
                      "Properties": {"Environment": {"Variables": {"X": v}}}}}})
        };
        let app = App::from_template(&t(json!("2"))).unwrap();
        assert!(environment(&app, &Resolved::default()).is_err());
        let app = App::from_template(&t(json!({"Ref": "Nowhere"}))).unwrap();
        assert!(environment(&app, &Resolved::default()).is_err());
        let app = App::from_template(&t(json!("1"))).unwrap();
        assert_eq!(environment(&app, &Resolved::default()).unwrap()["X"], "1");
    }
}
