//! The sequencer's failed-batch queue in the local SQS, and the records the event source
//! mapping would write to it.

use crate::{sdk_config, TestStore};

impl TestStore {
    /// A failed-batch queue of this table's own in the local SQS, as the template's
    /// `SequencerFailures` (empty when made).
    pub async fn failed_batches(&self) -> eventstore_dynamodb::trigger::FailedBatches {
        self.failed_batches_named("failures").await
    }

    /// Another such queue, `<table>-<name>`.
    pub async fn failed_batches_named(
        &self,
        name: &str,
    ) -> eventstore_dynamodb::trigger::FailedBatches {
        let config = sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let url = sqs
            .create_queue()
            .queue_name(format!("{}-{name}", self.table))
            .send()
            .await
            .expect("create a queue in the local SQS")
            .queue_url
            .unwrap();
        eventstore_dynamodb::trigger::FailedBatches::new(
            sqs,
            url,
            eventstore_dynamodb::trigger::local::streams_client_from_env().await,
        )
    }

    /// What the event source mapping would send its on-failure destination had it given up
    /// on every event insert the table's stream holds now: their shard and their first and
    /// last sequence numbers (the stream path's records of the sequencer's own writes lie
    /// between them, as on AWS).
    pub async fn failed_batch_of_every_insert(&self) -> eventstore_dynamodb::trigger::FailedBatch {
        use aws_sdk_dynamodbstreams::types::{OperationType, ShardIteratorType};
        let streams = eventstore_dynamodb::trigger::local::streams_client_from_env().await;
        let arn = self.store.log().stream_arn().await.unwrap();
        let description = streams
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .unwrap()
            .stream_description
            .unwrap();
        let shards = description.shards();
        assert_eq!(shards.len(), 1, "the local stream has one shard");
        let shard = shards[0].shard_id().unwrap().to_owned();
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(&shard)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator;
        let mut inserts = Vec::new();
        while let Some(it) = iterator.take() {
            let out = streams
                .get_records()
                .shard_iterator(it)
                .send()
                .await
                .unwrap();
            let records = out.records.unwrap_or_default();
            if records.is_empty() {
                break;
            }
            for r in &records {
                let d = r.dynamodb().unwrap();
                let sk = d
                    .keys()
                    .and_then(|k| k.get("SK"))
                    .and_then(|v| v.as_s().ok());
                if r.event_name() == Some(&OperationType::Insert)
                    && sk.is_some_and(|sk| sk.starts_with("VERSION#"))
                {
                    inserts.push(d.sequence_number().unwrap().to_owned());
                }
            }
            iterator = out.next_shard_iterator;
        }
        assert!(!inserts.is_empty(), "no event insert in the stream");
        serde_json::from_value(serde_json::json!({
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
            "version": "1.0",
            "timestamp": "2026-11-26T09:12:44.318Z",
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": inserts[0],
                "endSequenceNumber": inserts[inserts.len() - 1],
                "batchSize": inserts.len(),
                "streamArn": arn,
            }
        }))
        .unwrap()
    }
}
