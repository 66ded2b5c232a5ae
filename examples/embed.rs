//! Embedding jobq in a Rust program with a job type of its own.
//!
//! Run a Redis, then: `cargo run --example embed`, and in another shell
//! `curl -X POST localhost:8081/jobs -d '{"type": "word_count", "payload": {"text": "to be or not to be"}}'`
//! followed by `curl localhost:8081/jobs/<id>` to see `{"words": 6, "distinct": 4}` as its result.

use serde_json::{json, Value};
use std::collections::HashSet;

use jobq::{Config, Handler, JobContext, JobError, JobResult};

/// Counts the words of `payload.text`. A struct handler can check payloads at submission time.
struct WordCount;

impl Handler for WordCount {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        match payload.get("text") {
            Some(Value::String(_)) => Ok(()),
            _ => Err("\"text\" must be a string".into()),
        }
    }

    fn run(&self, job: &JobContext) -> JobResult {
        let text = job.payload["text"]
            .as_str()
            .ok_or_else(|| JobError::permanent("\"text\" must be a string"))?;
        let mut distinct = HashSet::new();
        let mut words = 0;
        for w in text.split_whitespace() {
            if job.cancel.is_cancelled() {
                return Err(JobError::transient("cancelled"));
            }
            words += 1;
            distinct.insert(w.to_lowercase());
        }
        Ok(json!({ "words": words, "distinct": distinct.len() }))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    // jobq logs through the `log` crate and installs no logger itself: without one, its lines
    // (jobs completed, retries, Redis going away) are lost. The same setup as the binary's.
    let log_config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .build();
    simplelog::WriteLogger::init(config.log_level, log_config, std::io::stderr())?;
    let mut registry = jobq::builtin_registry(&config)?;
    registry.register("word_count", WordCount);
    // Closures are handlers too.
    registry.register("shout", |job: &JobContext| -> JobResult {
        let s = job.payload["text"].as_str().unwrap_or_default();
        Ok(json!(s.to_uppercase()))
    });

    let running = jobq::start(config, registry)?;
    println!("listening on http://{}; Ctrl-C to stop", running.addr());
    let stop = running.shutdown_handle();
    ctrlc::set_handler(move || {
        stop.trigger();
    })?;
    let report = running.wait()?;
    println!(
        "stopped: {} finished during the drain, {} requeued",
        report.finished, report.requeued
    );
    Ok(())
}
