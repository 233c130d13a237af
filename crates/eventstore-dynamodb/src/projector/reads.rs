//! What readers and operators see: subscription checkpoints, parked events and rows.

use super::*;

impl Projector {
    /// An external subscriber's checkpoint (`SUBSCRIPTION#<name>` in the checkpoints table).
    pub async fn subscription(&self, name: &str) -> Result<Option<u64>, StoreError> {
        let pk = format!("SUBSCRIPTION#{name}");
        let item =
            get_consistent(&self.client, &self.tables.checkpoints, &pk, CHECKPOINT_SK).await?;
        Ok(item.map(|item| number(&item, POSITION)))
    }

    /// Stores a subscriber's checkpoint. It never moves backwards unless `force`: then the
    /// stored position is returned as the error value and nothing changes.
    pub async fn save_subscription(
        &self,
        name: &str,
        position: u64,
        force: bool,
    ) -> Result<Result<(), u64>, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.tables.checkpoints)
            .item(keys::PK, s(format!("SUBSCRIPTION#{name}")))
            .item(keys::SK, s(CHECKPOINT_SK))
            .item(POSITION, n(position));
        if !force {
            put = put
                .condition_expression("attribute_not_exists(#pos) OR #pos <= :pos")
                .expression_attribute_names("#pos", POSITION)
                .expression_attribute_values(":pos", n(position))
                .return_values_on_condition_check_failure(
                    aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                );
        }
        match put.send().await {
            Ok(_) => Ok(Ok(())),
            Err(SdkError::ServiceError(se)) => match se.err() {
                aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                    Ok(Err(c.item().map(|i| number(i, POSITION)).unwrap_or(position)))
                }
                _ => Err(from_sdk("PutItem", SdkError::ServiceError(se))),
            },
            Err(e) => Err(from_sdk("PutItem", e)),
        }
    }

    /// Parked events of a projection's live generation, oldest first (all pages).
    pub async fn parked(&self, name: &str) -> Result<Vec<Parked>, StoreError> {
        let generation = self.checkpoint(name).await?.generation;
        let mut found = self.parked_under(&parked_pk(name, generation)).await?;
        if generation == 1 {
            found.extend(self.parked_under(&legacy_parked_pk(name)).await?);
            found.sort_by_key(|p| p.position);
            found.dedup_by_key(|p| p.position);
        }
        Ok(found)
    }

    pub(super) async fn parked_under(&self, pk: &str) -> Result<Vec<Parked>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.checkpoints)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| from_sdk("Query", e))?;
            for item in out.items.unwrap_or_default() {
                let text = |k: &str| {
                    item.get(k)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default()
                };
                found.push(Parked {
                    position: text(keys::SK).parse().unwrap_or(0),
                    event_id: text("eventId"),
                    error: text("error"),
                });
            }
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok(found),
            }
        }
    }

    /// The rows under `key` in the projection's live generation, `after` an item, at most
    /// `limit` (with the item to continue after, if there are more).
    pub async fn rows(
        &self,
        name: &str,
        key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, Value)>, Option<String>), StoreError> {
        let generation = self.checkpoint(name).await?.generation;
        let (pk, _) = row_key(name, generation, &RowId::single(key));
        let mut rows = Vec::new();
        let mut start = after.map(|item| {
            HashMap::from([
                (keys::PK.to_owned(), s(&pk)),
                (keys::SK.to_owned(), s(item)),
            ])
        });
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.rows)
                .consistent_read(true)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_values(":pk", s(&pk))
                .limit(i32::try_from(limit + 1 - rows.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| from_sdk("Query", e))?;
            for item in out.items.unwrap_or_default() {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let (Some(sk), Some(value)) = (text(keys::SK), text(ROW_VALUE)) else {
                    continue;
                };
                if rows.len() == limit {
                    let next = rows.last().map(|(item, _): &(String, Value)| item.clone());
                    return Ok((rows, next));
                }
                let value = serde_json::from_str(&value)
                    .map_err(|e| StoreError::internal("decoding a projection row", e))?;
                rows.push((if sk == "-" { String::new() } else { sk }, value));
            }
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) => start = Some(key),
                None => return Ok((rows, None)),
            }
        }
    }
}
