//! `eventstore check`: what an operator looks at first when the store misbehaves, read off
//! the deployed tables. Each finding says what is wrong and what to do. It covers the
//! DynamoDB side (tables, indexes, the stream the sequencer needs, recovery settings); the
//! CLI adds the Lambda event source mappings and failure queues (a batch the sequencer gave
//! up on waits in its queue until the sweep replays it).

use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::types::{
    ContinuousBackupsStatus, IndexStatus, StreamViewType, TableDescription, TableStatus,
};
use eventstore_core::StoreError;

use crate::compose::Components;
use crate::error::from_sdk;
use crate::schema::events_table_shape;

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// What was checked: "events table", "index GlobalOrder", ...
    pub subject: String,
    pub ok: bool,
    /// What was found, and when not ok, what to do.
    pub detail: String,
}

fn finding(subject: impl Into<String>, ok: bool, detail: impl Into<String>) -> Finding {
    Finding {
        subject: subject.into(),
        ok,
        detail: detail.into(),
    }
}

async fn describe(
    components: &Components,
    table: &str,
) -> Result<Option<TableDescription>, StoreError> {
    match components
        .client()
        .describe_table()
        .table_name(table)
        .send()
        .await
    {
        Ok(out) => Ok(out.table),
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(DescribeTableError::ResourceNotFoundException(_))
            ) =>
        {
            Ok(None)
        }
        Err(err) => Err(from_sdk("DescribeTable", err)),
    }
}

/// The events table's current stream, if it has one (for the event source mappings check).
pub async fn stream_arn(components: &Components) -> Result<Option<String>, StoreError> {
    Ok(describe(components, &components.config.events_table)
        .await?
        .and_then(|t| t.latest_stream_arn().map(str::to_owned)))
}

/// Checks the deployed tables; the findings, every one ok or not.
pub async fn check(components: &Components) -> Result<Vec<Finding>, StoreError> {
    let mut found = Vec::new();
    let events = &components.config.events_table;
    let Some(table) = describe(components, events).await? else {
        found.push(finding(
            "events table",
            false,
            format!("{events} does not exist: check --table or EVENTS_TABLE, and that the stack deployed"),
        ));
        return Ok(found);
    };
    let active = table.table_status() == Some(&TableStatus::Active);
    found.push(finding(
        "events table",
        active,
        if active {
            format!("{events} is ACTIVE")
        } else {
            format!(
                "{events} is {:?}, not ACTIVE: wait for the update to finish",
                table.table_status()
            )
        },
    ));
    let view = table
        .stream_specification()
        .filter(|s| s.stream_enabled())
        .and_then(|s| s.stream_view_type().cloned());
    let wanted = events_table_shape().stream_view_type;
    let stream_ok = view.as_ref().map(StreamViewType::as_str) == Some(wanted.as_str());
    found.push(finding(
        "events stream",
        stream_ok,
        match view {
            Some(v) if stream_ok => format!("enabled, {}", v.as_str()),
            Some(v) => format!(
                "enabled with {}, not {wanted}: the sequencer's records need {wanted}; redeploy the template",
                v.as_str()
            ),
            None => format!(
                "off: no global order without it; enable the stream ({wanted}) as the template does"
            ),
        },
    ));
    for index in events_table_shape().indexes {
        let status = table
            .global_secondary_indexes()
            .iter()
            .find(|i| i.index_name() == Some(index.name.as_str()))
            .map(|i| i.index_status().cloned());
        let (ok, detail) = match status {
            None => (
                false,
                "missing: deploy the template (CloudFormation adds one index per update)"
                    .to_owned(),
            ),
            Some(Some(IndexStatus::Active)) | Some(None) => (true, "ACTIVE".to_owned()),
            Some(Some(other)) => (
                false,
                format!(
                    "{}: reads through it wait until it is ACTIVE",
                    other.as_str()
                ),
            ),
        };
        found.push(finding(format!("index {}", index.name), ok, detail));
    }
    let protected = table.deletion_protection_enabled() == Some(true);
    found.push(finding(
        "deletion protection",
        protected,
        if protected {
            "on"
        } else {
            "off: turn it on (the template does); the table holds the only copy of the events"
        },
    ));
    let backups = components
        .client()
        .describe_continuous_backups()
        .table_name(events)
        .send()
        .await
        .map_err(|e| from_sdk("DescribeContinuousBackups", e))?;
    let pitr = backups
        .continuous_backups_description()
        .map(|d| d.continuous_backups_status() == &ContinuousBackupsStatus::Enabled)
        .unwrap_or(false)
        && backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .is_some_and(|s| s.as_str() == "ENABLED");
    found.push(finding(
        "point-in-time recovery",
        pitr,
        if pitr {
            "on"
        } else {
            "off: turn it on (the template does); it is how a bad write is undone"
        },
    ));
    for (subject, name) in [
        (
            "projections table",
            &components.config.projection_tables.rows,
        ),
        (
            "checkpoints table",
            &components.config.projection_tables.checkpoints,
        ),
    ] {
        let ok = describe(components, name)
            .await?
            .is_some_and(|t| t.table_status() == Some(&TableStatus::Active));
        found.push(finding(
            subject,
            ok,
            if ok {
                format!("{name} is ACTIVE")
            } else {
                format!("{name} is missing or not ACTIVE: check PROJECTIONS_TABLE and CHECKPOINTS_TABLE")
            },
        ));
    }
    Ok(found)
}
