//! Read models in one DynamoDB table (partition key `pk`): documents under `{model}#{version}#{aggregate}`
//! (`doc`, the JSON; `seq`, the padded sequence number; `recent`, the effect keys; `applied`), pointers under
//! `model#{model}` (`live`, `paused`).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use super::{document_key, pointer_key, Pointer, ReadModelError, ReadModelStore, Stored};
use crate::aws;

/// A document item read back.
fn stored(key: &str, item: &HashMap<String, AttributeValue>) -> Result<Stored, ReadModelError> {
    let text = |name: &str| {
        aws::item_text(item, name)
            .map(str::to_owned)
            .ok_or_else(|| ReadModelError(format!("{key}: no {name}")))
    };
    let recent = item
        .get("recent")
        .and_then(|v| v.as_l().ok())
        .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
        .unwrap_or_default();
    Ok(Stored {
        doc: text("doc")?,
        seq: text("seq")?,
        recent,
        applied: aws::item_number(item, "applied")
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
    })
}

/// Read models in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoReadModels {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoReadModels {
    /// Read models in `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn item(
        &self,
        key: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, ReadModelError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ReadModelError(aws::describe("GetItem", e)))?;
        Ok(out.item)
    }
}

impl ReadModelStore for DynamoReadModels {
    async fn get(&self, key: &str) -> Result<Option<Stored>, ReadModelError> {
        match self.item(key).await? {
            Some(item) => stored(key, &item).map(Some),
            None => Ok(None),
        }
    }

    async fn put_if(
        &self,
        key: &str,
        stored: &Stored,
        expected: Option<&str>,
    ) -> Result<bool, ReadModelError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(key.to_owned()))
            .item("doc", AttributeValue::S(stored.doc.clone()))
            .item("seq", AttributeValue::S(stored.seq.clone()))
            .item(
                "recent",
                AttributeValue::L(
                    stored
                        .recent
                        .iter()
                        .map(|k| AttributeValue::S(k.clone()))
                        .collect(),
                ),
            )
            .item("applied", AttributeValue::N(stored.applied.to_string()));
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(seq) => put
                .condition_expression("seq = :seq")
                .expression_attribute_values(":seq", AttributeValue::S(seq.to_owned())),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|x| x.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(ReadModelError(aws::describe("PutItem", e))),
        }
    }

    async fn pointer(&self, model: &str) -> Result<Option<Pointer>, ReadModelError> {
        Ok(self.item(&pointer_key(model)).await?.and_then(|item| {
            Some(Pointer {
                live: aws::item_text(&item, "live")?.to_owned(),
                paused: item
                    .get("paused")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false),
            })
        }))
    }

    async fn set_pointer(&self, model: &str, pointer: &Pointer) -> Result<(), ReadModelError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pointer_key(model)))
            .item("live", AttributeValue::S(pointer.live.clone()))
            .item("paused", AttributeValue::Bool(pointer.paused))
            .send()
            .await
            .map_err(|e| ReadModelError(aws::describe("PutItem", e)))?;
        Ok(())
    }

    async fn documents(
        &self,
        model: &str,
        version: &str,
    ) -> Result<BTreeMap<String, Stored>, ReadModelError> {
        let prefix = document_key(model, version, "");
        let mut out = BTreeMap::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :prefix)")
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| ReadModelError(aws::describe("Scan", e)))?;
            for item in page.items() {
                let Some(pk) = aws::item_text(item, "pk") else {
                    continue;
                };
                let aggregate = pk[prefix.len()..].to_owned();
                out.insert(aggregate, stored(pk, item)?);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(out);
            }
        }
    }
}
