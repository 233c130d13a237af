//! `eventstore check --function <name> --failure-queue <url>`: the Lambda side of a
//! deployed stack, beside the tables `eventstore_dynamodb::health::check` reads. Each stream
//! consumer must have an enabled event source mapping on the events table's stream, and each
//! failure queue must be empty (a message there is a batch Lambda gave up on).

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::QueueAttributeName;
use eventstore_dynamodb::health::Finding;

fn finding(subject: impl Into<String>, ok: bool, detail: impl Into<String>) -> Finding {
    Finding {
        subject: subject.into(),
        ok,
        detail: detail.into(),
    }
}

/// The findings for `functions` (stream consumers: sequencer, projector, publisher) and
/// `queues` (their failure queues' URLs). `stream_arn` is the events table's stream.
pub(crate) async fn check(
    config: &aws_config::SdkConfig,
    stream_arn: Option<&str>,
    functions: &[String],
    queues: &[String],
) -> Vec<Finding> {
    let mut found = Vec::new();
    let lambda = aws_sdk_lambda::Client::new(config);
    for function in functions {
        let subject = format!("function {function}");
        let mut mappings = Vec::new();
        let mut pages = lambda
            .list_event_source_mappings()
            .function_name(function)
            .into_paginator()
            .items()
            .send();
        let mut failed = None;
        while let Some(m) = pages.next().await {
            match m {
                Ok(m) => mappings.push(m),
                Err(err) => {
                    failed = Some(err.code().unwrap_or("error").to_owned());
                    break;
                }
            }
        }
        if let Some(code) = failed {
            found.push(finding(subject, false, format!("cannot list its event source mappings ({code}): check the name (a stack output) and lambda:ListEventSourceMappings")));
            continue;
        }
        let ours: Vec<_> = mappings
            .iter()
            .filter(|m| stream_arn.is_some() && m.event_source_arn() == stream_arn)
            .collect();
        match ours.as_slice() {
            [] => found.push(finding(
                subject,
                false,
                format!(
                    "no event source mapping on the events table's stream ({}): it receives no records; redeploy the template",
                    stream_arn.unwrap_or("the table has no stream")
                ),
            )),
            [m, ..] => {
                let state = m.state().unwrap_or("unknown");
                let last = m.last_processing_result().unwrap_or("none yet");
                let ok = state == "Enabled" && !last.starts_with("PROBLEM");
                let detail = if ok {
                    format!("mapping Enabled on the events stream; last result: {last}")
                } else if state != "Enabled" {
                    format!("mapping is {state}, not Enabled: enable it (aws lambda update-event-source-mapping --uuid {} --enabled)", m.uuid().unwrap_or("?"))
                } else {
                    format!("last result: {last}: read the function's log and docs/runbook.md")
                };
                found.push(finding(subject, ok, detail));
            }
        }
    }
    let sqs = aws_sdk_sqs::Client::new(config);
    for queue in queues {
        let subject = format!("failure queue {queue}");
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(queue)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await;
        match attributes {
            Err(err) => found.push(finding(
                subject,
                false,
                format!(
                    "cannot read it ({}): check the URL (a stack output) and sqs:GetQueueAttributes",
                    err.code().unwrap_or("error")
                ),
            )),
            Ok(out) => {
                let count = |name: QueueAttributeName| -> u64 {
                    out.attributes()
                        .and_then(|a| a.get(&name))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                let held = count(QueueAttributeName::ApproximateNumberOfMessages)
                    + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
                found.push(if held == 0 {
                    finding(subject, true, "empty")
                } else {
                    finding(
                        subject,
                        false,
                        format!("{held} batches given up: find the cause (docs/runbook.md, Failure queues), then purge it"),
                    )
                });
            }
        }
    }
    found
}
