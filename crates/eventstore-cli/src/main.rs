//! `eventstore`: operator commands against an events table.
//!
//! `eventstore rebuild <projection>` replays a projection from position 1 into a fresh
//! generation of its rows and switches readers to it when it has caught up (see
//! `eventstore_core::ProjectionEngine::rebuild`). This is how a read model is added, or fixed,
//! months after its events were written.
//!
//! `eventstore replay <projection>` applies parked events late, after a fix.
//!
//! `eventstore check` reads the deployed tables (and, given their names, the stream
//! consumers' event source mappings and failure queues) and says what is wrong.
//!
//! `eventstore sweep` runs the sequencer's sweep now; `eventstore stream <id>` shows a stream;
//! `eventstore tail` prints the global order (or a type's or category's) from a position,
//! and with `--follow` keeps printing new events. `--json` prints one JSON object a line.
//!
//! `eventstore dev-token` mints a bearer token for the local server run with
//! `AUTH_MODE=jwt` (see docs/authorization.md).
//!
//! `eventstore repair` gives positions to events the sequencer never saw. DynamoDB Streams
//! keeps records for 24 hours, so a sequencer outage longer than that strands the events
//! appended early in it; repair finds them with a Scan and sequences them with the same code
//! as the sequencer. It is safe to run while the sequencer runs.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use eventstore_core::publish::PublisherStore;
use eventstore_core::{Category, EventStore, EventType, GlobalFilter};
use eventstore_dynamodb::trigger::FailedBatches;
use eventstore_dynamodb::{Components, Config, DynamoPublisherStore, Sequencer};
use indicatif::{ProgressBar, ProgressStyle};

mod deployment;
mod dev_token;
mod projections;
mod reads;

use projections::{parked, projections, rebuild, replay};
use reads::{stream, tail};

#[derive(Parser)]
#[command(
    name = "eventstore",
    version,
    about = "Operator commands of the event store"
)]
struct Cli {
    /// The events table (default: $EVENTS_TABLE, else eventstore-events).
    #[arg(long, global = true)]
    table: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints a bearer token for `make dev` run with AUTH_MODE=jwt, signed with the local
    /// development key (EVENTSTORE_DEV_KEY, else the public default): never valid on AWS.
    DevToken {
        /// What the token may do (repeat, or separate with commas): events.read,
        /// events.append, projections.read, snapshots.write, subscriptions, admin.
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// The tenant the token is confined to (its names start with `<tenant>.`).
        #[arg(long)]
        tenant: Option<String>,
        /// The claim that carries the tenant (default: $AUTH_TENANT_CLAIM).
        #[arg(long)]
        tenant_claim: Option<String>,
        #[arg(long, default_value = "developer")]
        subject: String,
        /// Seconds until it expires.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Replays a projection from position 1 into new rows, then switches reads to them.
    Rebuild {
        /// A projection the app registers: category-streams or account-balances.
        projection: String,
    },
    /// Finds events without a global position (a full Scan: it reads the whole table once)
    /// and sequences them, oldest first.
    Repair {
        /// Only report what would be sequenced.
        #[arg(long)]
        dry_run: bool,
    },
    /// Runs the sequencer's sweep now: rolls forward the counter's claim and replays the
    /// batches waiting in SEQUENCER_FAILURES_QUEUE_URL's queue (a stack output).
    Sweep,
    /// Checks the deployed tables: the events table, its indexes and stream, deletion
    /// protection, point-in-time recovery, the projection tables. Exit
    /// status 1 if anything is wrong, with what to do.
    Check {
        #[arg(long)]
        json: bool,
        /// A stream consumer (the stack outputs its names): its event source mapping must
        /// be enabled on the events table's stream. Repeat for each.
        #[arg(long = "function")]
        functions: Vec<String>,
        /// A failure queue's URL (stack outputs): it must be empty. Repeat for each.
        #[arg(long = "failure-queue")]
        queues: Vec<String>,
    },
    /// Every projection's checkpoint, generation, lag behind the head and parked count.
    Projections {
        #[arg(long)]
        json: bool,
    },
    /// The events a projection parked in its live generation, with their errors.
    Parked {
        projection: String,
        #[arg(long)]
        json: bool,
    },
    /// The events the EventBridge publisher parked (no PutEvents request can carry them),
    /// with why: consumers of the bus never saw them.
    PublishedParked {
        /// The publisher's name (PUBLISHER_NAME; the template's is eventbridge).
        #[arg(long, default_value = "eventbridge")]
        publisher: String,
        #[arg(long)]
        json: bool,
    },
    /// Applies a projection's parked events late, after a fix (all of them, or the one at
    /// `--position`), each to the rows as they are now; those that still fail stay parked.
    Replay {
        projection: String,
        #[arg(long)]
        position: Option<u64>,
    },
    /// Shows a stream: its category and version, then its events.
    Stream {
        id: String,
        /// One JSON object per line: the stream's info, then each event as the API returns it.
        #[arg(long)]
        json: bool,
    },
    /// Prints events in global order from a position (of one type or category if asked),
    /// then stops at the end, or with `--follow` waits for more until interrupted.
    Tail {
        /// The first global position to print.
        #[arg(long, default_value_t = 1)]
        from: u64,
        #[arg(long, conflicts_with = "category")]
        r#type: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        follow: bool,
        /// One event per line as the API returns it (JSON).
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn json_line(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| e.to_string())
}

async fn check(
    components: &Components,
    json: bool,
    functions: &[String],
    queues: &[String],
) -> Result<(), String> {
    let mut findings = eventstore_dynamodb::health::check(components)
        .await
        .map_err(|e| e.to_string())?;
    if !functions.is_empty() || !queues.is_empty() {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let stream = eventstore_dynamodb::health::stream_arn(components)
            .await
            .map_err(|e| e.to_string())?;
        findings.extend(deployment::check(&config, stream.as_deref(), functions, queues).await);
    }
    for f in &findings {
        if json {
            println!("{}", json_line(f)?);
        } else {
            let mark = if f.ok { "ok  " } else { "FAIL" };
            println!("{mark} {}: {}", f.subject, f.detail);
        }
    }
    match findings.iter().filter(|f| !f.ok).count() {
        0 => Ok(()),
        bad => Err(format!("{bad} of {} checks failed", findings.len())),
    }
}

async fn published_parked(
    store: &DynamoPublisherStore,
    publisher: &str,
    json: bool,
) -> Result<(), String> {
    for p in store.parked(publisher).await.map_err(|e| e.to_string())? {
        if json {
            println!("{}", json_line(&p)?);
        } else {
            println!(
                "#{} {} {} {}: {}",
                p.position, p.stream_id, p.event_type, p.event_id, p.reason
            );
        }
    }
    Ok(())
}

async fn sweep(sequencer: &Sequencer) -> Result<(), String> {
    if sequencer.failed_batches().is_none() {
        eprintln!("eventstore: SEQUENCER_FAILURES_QUEUE_URL is not set: settling the counter only");
    }
    let report = sequencer.sweep().await.map_err(|e| e.to_string())?;
    println!(
        "replayed {} failed batches ({} unreplayable): {} streams, {} events sequenced",
        report.batches, report.unreplayable, report.streams, report.events
    );
    if report.unreplayable > 0 {
        return Err(
            "some failed batches' records are gone from the stream: run `eventstore repair`"
                .to_owned(),
        );
    }
    Ok(())
}

/// Streams sequenced per step of the progress bar.
const STREAMS_PER_STEP: usize = 48;

pub(crate) fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

async fn repair(sequencer: &Sequencer, dry_run: bool) -> Result<(), String> {
    let estimate = sequencer
        .approximate_item_count()
        .await
        .map_err(|e| e.to_string())?;
    let scan = ProgressBar::new(estimate.max(1)).with_style(style(
        "scan     [{bar:40}] {pos}/~{len} items  {msg}  {elapsed}",
    ));
    scan.enable_steady_tick(Duration::from_millis(200));
    let hints = sequencer
        .find_unsequenced(|scanned, found| {
            if scanned > scan.length().unwrap_or(0) {
                scan.set_length(scanned);
            }
            scan.set_position(scanned);
            scan.set_message(format!("{found} unsequenced"));
        })
        .await
        .map_err(|e| e.to_string())?;
    scan.finish();
    let streams = hints.len();
    println!("{streams} streams have events without a position");
    if dry_run || hints.is_empty() {
        return Ok(());
    }
    let bar = ProgressBar::new(streams as u64).with_style(style(
        "sequence [{bar:40}] {pos}/{len} streams  {msg}  {per_sec}  {elapsed}",
    ));
    let mut events = 0;
    for chunk in hints.chunks(STREAMS_PER_STEP) {
        let report = sequencer.sequence(chunk).await.map_err(|e| {
            format!("{e} (after {events} events; re-run repair to continue: it is idempotent)")
        })?;
        events += report.events;
        bar.inc(chunk.len() as u64);
        bar.set_message(format!("{events} events"));
    }
    bar.finish();
    println!("sequenced {events} events in {streams} streams");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::DevToken {
        scopes,
        tenant,
        tenant_claim,
        subject,
        ttl,
    } = cli.command
    {
        // Needs no AWS configuration, so it is answered before any is loaded.
        let request = dev_token::Request {
            scopes,
            tenant,
            tenant_claim,
            subject,
            ttl,
        };
        return match dev_token::mint(request) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("eventstore: {message}");
                ExitCode::FAILURE
            }
        };
    }
    let mut config = Config::from_env();
    if let Some(table) = cli.table {
        config.events_table = table;
    }
    // Built as the deployed functions build it: the app's projections and upcasters.
    let client = eventstore_dynamodb::client_from_env().await;
    let failed = match &config.sequencer_failures_queue {
        Some(queue) => Some(FailedBatches::from_env(queue.clone()).await),
        None => None,
    };
    let components =
        Components::new(config, client, eventstore_app::registry()).with_failed_batches(failed);
    let log = components.log.clone();
    let projector = || components.projector();
    let result = match cli.command {
        Command::Check {
            json,
            functions,
            queues,
        } => check(&components, json, &functions, &queues).await,
        Command::Repair { dry_run } => repair(&Sequencer::new(log), dry_run).await,
        Command::Sweep => sweep(&components.sequencer()).await,
        Command::Stream { id, json } => stream(&EventStore::new(log), &id, json).await,
        Command::Tail {
            from,
            r#type,
            category,
            follow,
            json,
        } => {
            let filter = match (r#type, category) {
                (Some(t), _) => EventType::parse(&t, "--type").map(GlobalFilter::EventType),
                (_, Some(c)) => Category::parse(&c, "--category").map(GlobalFilter::Category),
                _ => Ok(GlobalFilter::All),
            };
            match filter {
                Ok(filter) => tail(&EventStore::new(log), filter, from, follow, json).await,
                Err(e) => Err(e.to_string()),
            }
        }
        Command::Rebuild { projection } => rebuild(&projector(), &projection).await,
        Command::Projections { json } => projections(&projector(), json).await,
        Command::Parked { projection, json } => parked(&projector(), &projection, json).await,
        Command::PublishedParked { publisher, json } => {
            let store = DynamoPublisherStore::new(
                components.client().clone(),
                components.config.projection_tables.checkpoints.clone(),
            );
            published_parked(&store, &publisher, json).await
        }
        Command::Replay {
            projection,
            position,
        } => replay(&projector(), &projection, position).await,
        // Answered above, before any AWS configuration is loaded.
        Command::DevToken { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("eventstore: {message}");
            ExitCode::FAILURE
        }
    }
}
