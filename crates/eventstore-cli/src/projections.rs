//! The projection commands: checkpoints, parked events, replaying them, rebuilding.

use eventstore_dynamodb::Projector;
use indicatif::ProgressBar;

use crate::{json_line, style};

pub(crate) async fn projections(projector: &Projector, json: bool) -> Result<(), String> {
    let head = projector.head().await.map_err(|e| e.to_string())?;
    for projection in projector.projections() {
        let name = projection.name();
        let c = projector
            .checkpoint(name)
            .await
            .map_err(|e| e.to_string())?;
        let lag = head.saturating_sub(c.position);
        if json {
            println!(
                "{}",
                json_line(&serde_json::json!({
                    "name": name, "checkpoint": c.position, "head": head, "lag": lag,
                    "parked": c.parked, "generation": c.generation,
                }))?
            );
        } else {
            println!(
                "{name}: checkpoint {} of head {head} (lag {lag}), generation {}, {} parked",
                c.position, c.generation, c.parked
            );
        }
    }
    Ok(())
}

pub(crate) async fn parked(projector: &Projector, name: &str, json: bool) -> Result<(), String> {
    if projector.projection(name).is_none() {
        return Err(format!("no projection {name}"));
    }
    for p in projector.parked(name).await.map_err(|e| e.to_string())? {
        if json {
            println!(
                "{}",
                json_line(&serde_json::json!({
                    "position": p.position, "eventId": p.event_id, "error": p.error,
                }))?
            );
        } else {
            println!("#{} {}: {}", p.position, p.event_id, p.error);
        }
    }
    Ok(())
}

/// Replays parked events; fails (exit status 1) if any is still parked afterwards.
pub(crate) async fn replay(
    projector: &Projector,
    name: &str,
    position: Option<u64>,
) -> Result<(), String> {
    let Some(projection) = projector.projection(name) else {
        return Err(format!("no projection {name}"));
    };
    let replayed = projector
        .replay_parked(projection.as_ref(), position)
        .await
        .map_err(|e| e.to_string())?;
    for at in &replayed.applied {
        println!("#{at} replayed");
    }
    for (at, error) in &replayed.failed {
        println!("#{at} still parked: {error}");
    }
    if replayed.applied.is_empty() && replayed.failed.is_empty() {
        return match position {
            Some(at) => Err(format!("{name} has no parked event at position {at}")),
            None => {
                println!("{name} has no parked events");
                Ok(())
            }
        };
    }
    if replayed.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} still parked", replayed.failed.len()))
    }
}

pub(crate) async fn rebuild(projector: &Projector, name: &str) -> Result<(), String> {
    let Some(projection) = projector.projection(name) else {
        let known: Vec<&str> = projector.projections().iter().map(|p| p.name()).collect();
        return Err(format!(
            "no projection {name} (known: {})",
            known.join(", ")
        ));
    };
    let bar = ProgressBar::new(1).with_style(style(
        "rebuild  [{bar:40}] position {pos}/{len} (head)  {per_sec}  {elapsed}",
    ));
    let checkpoint = projector
        .rebuild(projection.as_ref(), |position, head| {
            bar.set_length(head.max(1));
            bar.set_position(position);
        })
        .await
        .map_err(|e| format!("{e} (re-run rebuild to resume)"))?;
    bar.finish();
    println!(
        "{name}: generation {} live at position {}",
        checkpoint.generation, checkpoint.position
    );
    Ok(())
}
