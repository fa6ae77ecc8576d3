//! The application as `template.yaml` declares it, read from the SAM-expanded template (plain CloudFormation,
//! see `scripts/expand_template.py`): streams, queues, functions and their Kinesis event source mappings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::esm::RetryPolicy;
use crate::filter::{Pattern, PatternError};

/// Something in the template the local stack cannot run, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file is not a template.
    #[error("template: {0}")]
    Shape(String),
    /// A resource's property is missing or has a value AWS would refuse.
    #[error("{resource}.{property}: {reason}")]
    Property {
        /// The resource's logical id.
        resource: String,
        /// The property.
        property: String,
        /// What is wrong.
        reason: String,
    },
    /// A filter pattern AWS would refuse.
    #[error("{resource}: {source}")]
    Filter {
        /// The mapping's logical id.
        resource: String,
        /// The pattern's error.
        source: PatternError,
    },
}

/// Where a mapping starts reading a shard that has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StartingPosition {
    /// The oldest record.
    TrimHorizon,
    /// Records written after the mapping starts.
    Latest,
    /// Records written at or after this time (seconds since the epoch).
    AtTimestamp(f64),
}

/// A Kinesis stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Logical id in the template.
    pub logical_id: String,
    /// Shards to create locally (`Metadata.tubes.LocalShardCount`, else `ShardCount`, else 1).
    pub shard_count: i32,
}

/// An SQS queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    /// Logical id in the template.
    pub logical_id: String,
}

/// A DynamoDB table (string partition key only: what the template declares).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Logical id in the template.
    pub logical_id: String,
    /// The partition key's attribute name.
    pub partition_key: String,
    /// The TTL attribute, if enabled.
    pub ttl_attribute: Option<String>,
}

/// A Secrets Manager secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Secret {
    /// Logical id in the template.
    pub logical_id: String,
    /// Its initial value (`SecretString`), if the template gives one.
    pub initial: Option<String>,
}

/// A Lambda function.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// Logical id in the template.
    pub logical_id: String,
    /// The binary `cargo lambda watch` runs it as (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    /// Its timeout.
    pub timeout: Duration,
    /// Its environment, unresolved (intrinsics as in the template).
    pub environment: BTreeMap<String, Value>,
}

/// A Kinesis event source mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// Logical id in the template.
    pub logical_id: String,
    /// The function it invokes (logical id).
    pub function: String,
    /// The stream it reads (logical id).
    pub stream: String,
    /// `StartingPosition` (+ `StartingPositionTimestamp`).
    pub starting_position: StartingPosition,
    /// `BatchSize`.
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds`.
    pub batching_window: Duration,
    /// `ParallelizationFactor`.
    pub parallelization_factor: usize,
    /// `FilterCriteria.Filters[].Pattern`, compiled.
    pub filters: Vec<Pattern>,
    /// Retry, bisect and response settings.
    pub policy: RetryPolicy,
    /// `DestinationConfig.OnFailure.Destination` (logical id of a queue).
    pub on_failure: Option<String>,
    /// `Enabled`.
    pub enabled: bool,
}

/// An S3 bucket (`AWS::S3::Bucket`): the event store's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Logical id.
    pub logical_id: String,
}

/// Everything the local stack runs.
#[derive(Debug, Clone, Default)]
pub struct App {
    /// Parameters' defaults, for `Ref`.
    pub parameters: BTreeMap<String, Value>,
    /// Streams.
    pub streams: Vec<Stream>,
    /// Queues.
    pub queues: Vec<Queue>,
    /// Secrets.
    pub secrets: Vec<Secret>,
    /// DynamoDB tables.
    pub tables: Vec<Table>,
    /// S3 buckets.
    pub buckets: Vec<Bucket>,
    /// Functions.
    pub functions: Vec<Function>,
    /// Kinesis event source mappings.
    pub mappings: Vec<Mapping>,
}

impl App {
    /// Reads an expanded (plain CloudFormation) template.
    pub fn from_template(template: &Value) -> Result<Self, TemplateError> {
        let resources = template
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or_else(|| TemplateError::Shape("no Resources".into()))?;
        let mut app = App::default();
        if let Some(params) = template.get("Parameters").and_then(Value::as_object) {
            for (name, spec) in params {
                if let Some(default) = spec.get("Default") {
                    app.parameters.insert(name.clone(), default.clone());
                }
            }
        }
        let mut kinesis_mappings = Vec::new();
        for (id, resource) in resources {
            let empty = Map::new();
            let props = resource
                .get("Properties")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            match resource.get("Type").and_then(Value::as_str) {
                Some("AWS::Kinesis::Stream") => {
                    let local = resource
                        .pointer("/Metadata/tubes/LocalShardCount")
                        .and_then(Value::as_i64);
                    let count = local
                        .or_else(|| props.get("ShardCount").and_then(Value::as_i64))
                        .unwrap_or(1);
                    app.streams.push(Stream {
                        logical_id: id.clone(),
                        shard_count: count.clamp(1, 64) as i32,
                    });
                }
                Some("AWS::SQS::Queue") => app.queues.push(Queue {
                    logical_id: id.clone(),
                }),
                Some("AWS::SecretsManager::Secret") => app.secrets.push(Secret {
                    logical_id: id.clone(),
                    initial: props
                        .get("SecretString")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }),
                Some("AWS::DynamoDB::Table") => app.tables.push(table(id, props)?),
                Some("AWS::S3::Bucket") => app.buckets.push(Bucket {
                    logical_id: id.clone(),
                }),
                Some("AWS::Lambda::Function") => app.functions.push(function(id, resource, props)?),
                Some("AWS::Lambda::EventSourceMapping") => {
                    kinesis_mappings.push((id.clone(), props.clone()))
                }
                _ => {}
            }
        }
        for (id, props) in kinesis_mappings {
            if let Some(m) = mapping(&id, &props, &app)? {
                app.mappings.push(m);
            }
        }
        Ok(app)
    }

    /// The function with this logical id.
    pub fn function(&self, logical_id: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }
}

fn table(id: &str, props: &Map<String, Value>) -> Result<Table, TemplateError> {
    let keys = props
        .get("KeySchema")
        .and_then(Value::as_array)
        .ok_or_else(|| prop_err(id, "KeySchema", "missing"))?;
    let hash = keys
        .iter()
        .find(|k| k.get("KeyType").and_then(Value::as_str) == Some("HASH"))
        .and_then(|k| k.get("AttributeName").and_then(Value::as_str))
        .ok_or_else(|| prop_err(id, "KeySchema", "no HASH key"))?;
    if keys.len() != 1 {
        return Err(prop_err(
            id,
            "KeySchema",
            "only a partition key is supported locally",
        ));
    }
    let ttl = props
        .get("TimeToLiveSpecification")
        .filter(|t| t.get("Enabled").and_then(Value::as_bool) == Some(true))
        .and_then(|t| t.get("AttributeName").and_then(Value::as_str))
        .map(str::to_owned);
    Ok(Table {
        logical_id: id.to_owned(),
        partition_key: hash.to_owned(),
        ttl_attribute: ttl,
    })
}

fn prop_err(resource: &str, property: &str, reason: impl Into<String>) -> TemplateError {
    TemplateError::Property {
        resource: resource.into(),
        property: property.into(),
        reason: reason.into(),
    }
}

fn function(
    id: &str,
    resource: &Value,
    props: &Map<String, Value>,
) -> Result<Function, TemplateError> {
    let binary = resource
        .pointer("/Metadata/BuildProperties/Binary")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            prop_err(
                id,
                "Metadata.BuildProperties.Binary",
                "required: the binary cargo lambda runs",
            )
        })?;
    let timeout = props.get("Timeout").and_then(Value::as_u64).unwrap_or(3);
    let environment = props
        .get("Environment")
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(Function {
        logical_id: id.into(),
        binary: binary.into(),
        timeout: Duration::from_secs(timeout),
        environment,
    })
}

/// The logical id a `Ref` or `Fn::GetAtt` points at.
pub fn target(value: &Value) -> Option<&str> {
    if let Some(r) = value.get("Ref").and_then(Value::as_str) {
        return Some(r);
    }
    match value.get("Fn::GetAtt")? {
        Value::Array(a) => a.first()?.as_str(),
        Value::String(s) => s.split('.').next(),
        _ => None,
    }
}

fn int(
    id: &str,
    props: &Map<String, Value>,
    name: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, TemplateError> {
    match props.get(name) {
        None => Ok(default),
        Some(v) => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(prop_err(
                id,
                name,
                format!("must be an integer from {min} to {max}"),
            )),
        },
    }
}

/// The value at a path of keys below `props`.
fn at<'a>(props: &'a Map<String, Value>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(props.get(*first)?, |v, k| v.get(*k))
}

fn mapping(
    id: &str,
    props: &Map<String, Value>,
    app: &App,
) -> Result<Option<Mapping>, TemplateError> {
    let source = props.get("EventSourceArn").and_then(target);
    let Some(stream) = source.filter(|s| app.streams.iter().any(|st| st.logical_id == *s)) else {
        return Ok(None); // Not a stream of this template (SQS, DynamoDB streams…): not ours to emulate.
    };
    let function = props
        .get("FunctionName")
        .and_then(target)
        .filter(|f| app.function(f).is_some())
        .ok_or_else(|| {
            prop_err(
                id,
                "FunctionName",
                "must reference a function of the template",
            )
        })?;
    let starting_position = match props.get("StartingPosition").and_then(Value::as_str) {
        Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
        Some("LATEST") => StartingPosition::Latest,
        Some("AT_TIMESTAMP") => match props
            .get("StartingPositionTimestamp")
            .and_then(Value::as_f64)
        {
            Some(t) => StartingPosition::AtTimestamp(t),
            None => {
                return Err(prop_err(
                    id,
                    "StartingPositionTimestamp",
                    "required with AT_TIMESTAMP",
                ))
            }
        },
        _ => {
            return Err(prop_err(
                id,
                "StartingPosition",
                "TRIM_HORIZON, LATEST or AT_TIMESTAMP",
            ))
        }
    };
    let batching_window = int(id, props, "MaximumBatchingWindowInSeconds", 0, 0, 300)?;
    let max_retry_attempts = int(id, props, "MaximumRetryAttempts", -1, -1, 10_000)?;
    let max_record_age = int(id, props, "MaximumRecordAgeInSeconds", -1, -1, 604_800)?;
    if (0..60).contains(&max_record_age) {
        return Err(prop_err(
            id,
            "MaximumRecordAgeInSeconds",
            "must be -1 or from 60 to 604800",
        ));
    }
    let report = props
        .get("FunctionResponseTypes")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|t| t == "ReportBatchItemFailures"));
    let mut filters = Vec::new();
    if let Some(list) = at(props, &["FilterCriteria", "Filters"]).and_then(Value::as_array) {
        if list.len() > 5 {
            return Err(prop_err(id, "FilterCriteria.Filters", "at most 5 filters"));
        }
        for f in list {
            let text = f.get("Pattern").and_then(Value::as_str).unwrap_or("");
            filters.push(
                Pattern::parse(text).map_err(|source| TemplateError::Filter {
                    resource: id.into(),
                    source,
                })?,
            );
        }
    }
    let on_failure = match at(props, &["DestinationConfig", "OnFailure", "Destination"]) {
        None => None,
        Some(d) => match target(d).filter(|q| app.queues.iter().any(|x| x.logical_id == *q)) {
            Some(q) => Some(q.to_owned()),
            None => {
                return Err(prop_err(
                    id,
                    "DestinationConfig.OnFailure",
                    "must reference a queue of the template",
                ))
            }
        },
    };
    Ok(Some(Mapping {
        logical_id: id.into(),
        function: function.into(),
        stream: stream.into(),
        starting_position,
        batch_size: int(id, props, "BatchSize", 100, 1, 10_000)? as usize,
        batching_window: Duration::from_secs(batching_window as u64),
        parallelization_factor: int(id, props, "ParallelizationFactor", 1, 1, 10)? as usize,
        filters,
        policy: RetryPolicy {
            bisect: props
                .get("BisectBatchOnFunctionError")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_retry_attempts: u32::try_from(max_retry_attempts).ok(),
            max_record_age: u64::try_from(max_record_age).ok().map(Duration::from_secs),
            report_batch_item_failures: report,
        },
        on_failure,
        enabled: props
            .get("Enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    }))
}

#[cfg(test)]
mod tests;
