//! The autotelic heartbeat in the kernel: `batos serve` beats every
//! `heartbeat.intervalSeconds` (read every second, so a change applies at once); a beat is [`batos::composite::heartbeat::beat`], and its acts are requests this
//! kernel executes with the cause `heartbeat`/`beat-N` — so each act's transactions,
//! cycle steps and memory progress reach every client as events like a person's would,
//! followed by a `heartbeat` event and a line in the metacognition journal. Each act
//! records the transactions it committed; `batos undo TX` undoes any of them.

use std::sync::Arc;
use std::time::Duration;

use batos::composite::heartbeat::{self, Actor, Beat, Done, FailedMessage};
use batos::image::json;
use batos_protocol::{Cause, Event, Request};

use crate::{Failure, Kernel};

/// The session every self-initiated act is caused by.
pub const SESSION: &str = "heartbeat";

impl Kernel {
    /// How long until the next beat, as `heartbeat.intervalSeconds` says now.
    pub fn heartbeat_interval(&self) -> Duration {
        let seconds =
            self.runtime.view(|cx| heartbeat::settings(cx.tx())).map_or(600, |s| s.interval_s);
        Duration::from_secs(seconds)
    }

    /// Beats once now: measures, perhaps acts, keeps the beat, and publishes it.
    pub fn beat(&self) -> Result<Beat, Failure> {
        let rt = &self.runtime;
        let embedder = crate::memory().embedder()?;
        let next = rt.view(|cx| heartbeat::next_beat(cx.tx()))?;
        let cause = Cause { session: SESSION.to_owned(), id: format!("beat-{next}") };
        let actor = KernelActor { kernel: self, cause: cause.clone() };
        let beat = heartbeat::beat(
            rt,
            crate::minds(),
            embedder.as_ref(),
            &actor,
            batos::composite::now_ms(),
        )?;
        if beat.note.starts_with("off") {
            return Ok(beat);
        }
        let detail = match (&beat.act, &beat.done) {
            (Some(act), Some(done)) => format!(
                "{}: {} ({}; {} token(s); transactions {})",
                act.describe(),
                done.summary,
                if done.ok { "done" } else { "failed" },
                done.tokens,
                done.transactions.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ),
            (None, Some(done)) => format!("could not act: {}", done.summary),
            _ => beat.note.clone(),
        };
        if let (Some(act), Some(done)) = (&beat.act, &beat.done) {
            // The metacognition journal holds the system's own acts beside its cycles.
            batos::synthesis::journal::Journal::new(rt.image().path()).append(serde_json::json!({
                "event": "heartbeat", "beat": beat.n, "act": act.kind(), "what": act.describe(),
                "ok": done.ok, "summary": done.summary, "tokens": done.tokens,
                "transactions": done.transactions, "cem": beat.cem.value,
            }));
        }
        let terms = [
            ("cog", beat.cem.h_cog),
            ("sol", beat.cem.h_sol),
            ("struc", beat.cem.h_struc),
            ("rel", beat.cem.h_rel),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        self.events.publish(
            Some(Cause { session: SESSION.to_owned(), id: format!("beat-{}", beat.n) }),
            Event::Heartbeat {
                beat: beat.n,
                cem: beat.cem.value,
                terms,
                stagnant: beat.stagnant,
                act: beat.act.as_ref().map(|a| a.kind().to_owned()),
                detail,
            },
        );
        Ok(beat)
    }
}

/// The kernel carrying out the heartbeat's acts as requests.
struct KernelActor<'a> {
    kernel: &'a Kernel,
    cause: Cause,
}

impl KernelActor<'_> {
    /// Executes `request` with the heartbeat's cause, collecting the transactions it
    /// commits and the tokens the minds journalled meanwhile (which over-counts when a
    /// person's cycle thinks at the same time: the budget errs toward doing less).
    fn run(&self, request: Request) -> (Result<batos_protocol::Output, Failure>, Vec<u64>, u64) {
        let journal = batos::synthesis::journal::Journal::new(self.kernel.runtime.image().path());
        let started = batos::composite::now_ms();
        let collecting = crate::cause::Collect::start();
        let result = self.kernel.execute(request, Some(self.cause.clone()));
        let transactions = collecting.finish();
        let tokens = journal
            .read()
            .iter()
            .filter(|e| e["time_ms"].as_i64().is_some_and(|t| t >= started) && e["event"] == "mind")
            .map(|e| {
                e["prompt_tokens"].as_u64().unwrap_or(0)
                    + e["completion_tokens"].as_u64().unwrap_or(0)
            })
            .sum();
        (result, transactions, tokens)
    }

    fn done(&self, request: Request, extra_tokens: u64) -> Done {
        let (result, transactions, tokens) = self.run(request);
        match result {
            Ok(output) => Done {
                ok: true,
                summary: heartbeat::shorten(&output.text, 400),
                tokens: tokens + extra_tokens,
                transactions,
            },
            Err(Failure(e)) => Done {
                ok: false,
                summary: format!("{}: {}", e.kind, heartbeat::shorten(&e.message, 400)),
                tokens: tokens + extra_tokens,
                transactions,
            },
        }
    }
}

impl Actor for KernelActor<'_> {
    fn resynthesize(&self, message: &FailedMessage) -> Done {
        self.done(
            Request::Send {
                object: message.receiver.to_string(),
                selector: message.selector.clone(),
                args: message.args.iter().map(json::to_json).collect(),
                brief: message.brief.clone(),
                examples: vec![],
                stateful: false,
                grants: vec![],
                wat: false,
                no_synthesis: false,
            },
            0,
        )
    }

    fn compress(&self) -> Done {
        let (result, transactions, tokens) = self.run(Request::Compress);
        match result {
            Ok(output) => {
                // Compression's mind calls are not journalled: each concept counts at
                // its cap.
                let concepts = output.json["concepts"].as_array().map_or(0, Vec::len) as u64;
                Done {
                    ok: true,
                    summary: heartbeat::shorten(&output.text, 400),
                    tokens: tokens + concepts * batos::memory::compress::MAX_CONCEPT_TOKENS as u64,
                    transactions,
                }
            }
            Err(Failure(e)) => Done {
                ok: false,
                summary: format!("{}: {}", e.kind, heartbeat::shorten(&e.message, 400)),
                tokens,
                transactions,
            },
        }
    }

    fn pursue(&self, goal: &str) -> Done {
        let (translated, _, tokens) = self.run(Request::Translate { words: goal.to_owned() });
        let words: Vec<String> = match translated {
            Ok(output) => serde_json::from_value(output.json["words"].clone()).unwrap_or_default(),
            Err(Failure(e)) => {
                return Done {
                    ok: false,
                    summary: format!("the goal did not become a message: {}", e.message),
                    tokens: tokens + 96,
                    transactions: vec![],
                }
            }
        };
        let (Some(object), Some(selector)) = (words.first(), words.get(1)) else {
            return Done {
                ok: false,
                summary: "the goal did not become a message".into(),
                ..Done::default()
            };
        };
        let args = words[2..]
            .iter()
            .map(|w| serde_json::from_str(w).unwrap_or(serde_json::Value::String(w.clone())))
            .collect();
        let mut done = self.done(
            Request::Send {
                object: object.clone(),
                selector: selector.clone(),
                args,
                brief: Some(goal.to_owned()),
                examples: vec![],
                stateful: false,
                grants: vec![],
                wat: false,
                no_synthesis: false,
            },
            // The translation's answer: at most its 96 tokens (the server may not say).
            tokens.max(96),
        );
        done.summary = format!("{} → {}", words.join(" "), done.summary);
        done
    }
}

/// Beats every `heartbeat.intervalSeconds` until `stopping` turns true, the beat itself
/// on the blocking pool (it asks minds and compiles). The interval is read every
/// second, so a change applies at once rather than after the wait already begun.
pub(crate) async fn run(kernel: Arc<Kernel>, mut stopping: tokio::sync::watch::Receiver<bool>) {
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        if last.elapsed() < kernel.heartbeat_interval() {
            continue;
        }
        let beating = kernel.clone();
        match tokio::task::spawn_blocking(move || beating.beat()).await {
            Ok(Ok(_)) => {}
            Ok(Err(Failure(e))) => tracing::warn!("the heartbeat could not beat: {}", e.message),
            Err(e) => tracing::warn!("the heartbeat panicked: {e}"),
        }
        // The interval runs from the end of a beat: an act that takes longer than the
        // interval is not followed at once by another.
        last = tokio::time::Instant::now();
    }
}
