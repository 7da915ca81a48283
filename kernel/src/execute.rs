//! What each request does: the one implementation behind the command line, the
//! session and the bridge.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use batos::image::json;
use batos::model::pull;
use batos::sandbox::{plugin, watch};
use batos::synthesis::{translate, Example, Language, Options, Synthesizer};
use batos::{Runtime, TxId, Value};
use batos_protocol::{Cause, Event, Output, Request};
use serde_json::json;

use crate::{bad_input, browse, render, Failure, Kernel};

pub fn execute(
    kernel: &Kernel,
    request: Request,
    cause: Option<&Cause>,
    cancel: &Arc<AtomicBool>,
) -> Result<Output, Failure> {
    let rt = &kernel.runtime;
    match request {
        // A kernel that created its image tells the first `awaken` so, as the command
        // line did when each command opened the image itself.
        Request::Awaken => {
            let first = !kernel.awakened.swap(true, std::sync::atomic::Ordering::SeqCst);
            render::awaken(rt, rt.created() && first)
        }
        Request::Roots => {
            let roots = rt.view(|cx| cx.tx().roots())?;
            let text = roots.iter().map(|(n, o)| format!("{n:<10} {o}")).collect::<Vec<_>>();
            let map: serde_json::Map<_, _> =
                roots.iter().map(|(k, v)| (k.clone(), json!(v.to_string()))).collect();
            Ok(Output { text: text.join("\n"), json: serde_json::Value::Object(map) })
        }
        Request::Inspect { object, at } => render::inspect(rt, &object, at.map(TxId)),
        Request::Send {
            object,
            selector,
            args,
            brief,
            examples,
            stateful,
            grants,
            wat,
            no_synthesis,
        } => {
            let receiver = rt.resolve(&object)?;
            let args = args.iter().map(|a| value(rt, a)).collect::<Result<Vec<_>, _>>()?;
            let examples = examples
                .iter()
                .map(|e| Example::parse(e))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad_input)?;
            let request = batos::synthesis::Request {
                receiver,
                selector,
                args,
                brief,
                examples,
                stateful,
                language: if wat { Language::Wat } else { Language::Rust },
                grants,
            };
            let value = send(kernel, &request, !no_synthesis, cause, cancel)?;
            Ok(render::value_output(&value, rt.image().last_tx()))
        }
        Request::Set { object, slot, value: v } => {
            let oid = rt.resolve(&object)?;
            let v = value(rt, &v)?;
            let committed = rt.set_slot(oid, &slot, v.clone())?;
            Ok(render::value_output(&v, committed.tx))
        }
        Request::Clone { object, name } => {
            let original = rt.resolve(&object)?;
            let clone = rt.clone_object(original, name.as_deref())?;
            Ok(Output { text: clone.to_string(), json: json!({ "oid": clone.0 }) })
        }
        Request::History { limit } => render::history(rt, limit),
        Request::Undo { tx } => {
            let undo = rt.image().undo(TxId(tx))?;
            Ok(Output {
                text: format!("undid {tx} with transaction {undo}"),
                json: json!({ "undone": tx, "tx": undo.0 }),
            })
        }
        Request::Pack { drop_history_before } => {
            let report = rt.image().pack(drop_history_before.map(TxId))?;
            Ok(Output {
                text: format!(
                    "removed {} objects, {} slot records, {} blobs, {} history entries",
                    report.objects, report.slot_records, report.blobs, report.history
                ),
                json: json!({
                    "objects": report.objects, "slot_records": report.slot_records,
                    "blobs": report.blobs, "history": report.history,
                }),
            })
        }
        Request::PluginAdd { file, component, manifest, source, origin } => {
            let built = plugin::from_bytes(
                &file,
                component.0,
                &manifest,
                source.map(|s| s.0),
                origin.as_deref().unwrap_or(&file),
            )?;
            let p = plugin::install(rt, &kernel.sandbox, &built)?;
            plugin_event(kernel, cause, "installed", &p);
            let grants = if p.grants.is_empty() {
                String::new()
            } else {
                format!(" with {}", p.grants.join(", "))
            };
            Ok(Output {
                text: format!(
                    "installed {} as `{}` on {}{grants} (component {})",
                    p.name, p.selector, p.target, p.component.hash
                ),
                json: render::installed_json(&p),
            })
        }
        Request::PluginList => {
            let all = plugin::list(rt)?;
            let text = if all.is_empty() {
                "no plugins installed".to_owned()
            } else {
                all.iter()
                    .map(|p| {
                        format!(
                            "{:<14} {:<16} on {:<10} {}",
                            p.name, p.selector, p.target, p.description
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok(Output {
                text,
                json: json!(all.iter().map(render::installed_json).collect::<Vec<_>>()),
            })
        }
        Request::PluginRemove { name } => {
            let p = plugin::remove(rt, &name)?;
            plugin_event(kernel, cause, "removed", &p);
            Ok(Output {
                text: format!("removed {} (`{}` on {})", p.name, p.selector, p.target),
                json: render::installed_json(&p),
            })
        }
        Request::PluginStats => plugin_stats(kernel),
        Request::PluginSync => {
            let drop_in = rt.image().path().join("plugins");
            Ok(render::sync_output(&watch::sync(rt, &kernel.sandbox, &drop_in)?))
        }
        Request::Cycles => render::cycles(rt),
        Request::Cycle { id } => render::cycle(rt, &id),
        Request::ModelList => Ok(render::model_list()),
        Request::ModelPull { name, job: false } => model_pull(kernel, cause, name),
        Request::ModelPull { name, job: true } => crate::jobs::enqueue_pull(kernel, name),
        Request::Translate { words } => translate_words(rt, &words),
        Request::Objects => browse::objects(rt),
        Request::Resolve { object, selector } => browse::resolve(kernel, &object, &selector),
        Request::Journal { limit } => browse::journal(rt, limit),
        Request::Layout => browse::layout(rt),
        Request::Place { object, x, y, open } => browse::place(rt, &object, x, y, open),
        Request::Ingest { paths } => ingest(kernel, cause, &paths),
        Request::Search { query, limit, words, meaning } => {
            let defaults = batos::memory::SearchOptions::default();
            let options = batos::memory::SearchOptions {
                limit: limit.unwrap_or(defaults.limit),
                words: words.unwrap_or(defaults.words),
                meaning: meaning.unwrap_or(defaults.meaning),
            };
            search(rt, &query, options)
        }
        Request::Compress => compress(kernel, cause),
        Request::Chat { question, persona } => chat(kernel, cause, &question, persona.as_deref()),
        Request::Cem { limit } => cem(kernel, limit.unwrap_or(20)),
        Request::Enqueue { object, selector, args, brief, examples, stateful, grants, wat } => {
            crate::jobs::enqueue(
                kernel,
                crate::jobs::Enqueue {
                    object,
                    selector,
                    args,
                    brief,
                    examples,
                    stateful,
                    grants,
                    wat,
                },
            )
        }
        Request::Jobs { limit, job } => {
            crate::jobs::list(kernel, limit.unwrap_or(20), job.as_deref())
        }
        Request::Upgrade { binary } => crate::upgrade::ask(kernel, &binary),
    }
}

/// A conversation with the personas, each answer streamed as `dialogue` events.
fn chat(
    kernel: &Kernel,
    cause: Option<&Cause>,
    question: &str,
    persona: Option<&str>,
) -> Result<Output, Failure> {
    let rt = &kernel.runtime;
    let now = batos::composite::now_ms();
    // The noise's seed: fresh per question, recorded in the decision to replay it.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let ask = batos::composite::dialogue::Ask { question, persona, seed, now_ms: now };
    let dialogue = batos::composite::converse(
        rt,
        crate::minds(),
        crate::memory(),
        &ask,
        &mut |persona, piece| {
            kernel.events.publish(
                cause.cloned(),
                Event::Dialogue {
                    persona: persona.to_owned(),
                    phase: "text".into(),
                    text: piece.to_owned(),
                },
            );
        },
    )?;
    for turn in &dialogue.turns {
        kernel.events.publish(
            cause.cloned(),
            Event::Dialogue {
                persona: turn.persona.clone(),
                phase: "turn".into(),
                text: turn.text.clone(),
            },
        );
    }
    Ok(render::dialogue(&dialogue))
}

/// The metric now and the beats kept.
fn cem(kernel: &Kernel, limit: usize) -> Result<Output, Failure> {
    use batos::composite::heartbeat;
    let rt = &kernel.runtime;
    let embedder = crate::memory().embedder()?;
    let (settings, beats, acts) = rt.view(|cx| {
        let tx = cx.tx();
        Ok((heartbeat::settings(tx)?, heartbeat::beats(tx)?, heartbeat::acts_kept(tx)?))
    })?;
    let (window, value) =
        heartbeat::measure(rt, embedder.as_ref(), &settings, batos::composite::now_ms())?;
    let skip = beats.len().saturating_sub(limit);
    Ok(render::cem(&settings, &window, &value, &beats[skip..], &acts))
}

/// One compression of the memory, each concept a `memory` event.
fn compress(kernel: &Kernel, cause: Option<&Cause>) -> Result<Output, Failure> {
    let rt = &kernel.runtime;
    let mind = crate::minds().mind_of(rt)?;
    let done = crate::memory().compress(rt, mind.as_ref(), &mut |done, total| {
        kernel.events.publish(
            cause.cloned(),
            Event::Memory {
                source: "compress".into(),
                outcome: "concept".into(),
                detail: format!("concept {done} of {total}"),
                done: done as u64,
                total: total as u64,
            },
        );
    })?;
    Ok(render::compressed(rt, &done))
}

/// Ingests files and folders, each file's outcome a `memory` event.
fn ingest(kernel: &Kernel, cause: Option<&Cause>, paths: &[String]) -> Result<Output, Failure> {
    use batos::memory::FileOutcome;
    if paths.is_empty() {
        return Err(bad_input("name the files or folders to ingest"));
    }
    let paths: Vec<std::path::PathBuf> = paths.iter().map(std::path::PathBuf::from).collect();
    let describe = |outcome: &FileOutcome| match outcome {
        FileOutcome::Ingested { fractals, .. } => ("ingested", format!("{fractals} fractals")),
        FileOutcome::Unchanged => ("unchanged", String::new()),
        FileOutcome::Skipped(why) => ("skipped", why.clone()),
    };
    let reports = crate::memory().ingest(&kernel.runtime, &paths, &mut |p| {
        let (outcome, detail) = describe(&p.file.outcome);
        kernel.events.publish(
            cause.cloned(),
            Event::Memory {
                source: p.file.path.clone(),
                outcome: outcome.into(),
                detail,
                done: p.done as u64,
                total: p.total as u64,
            },
        );
    })?;
    Ok(render::ingested(&reports))
}

/// Searches the memory.
fn search(
    rt: &Runtime,
    query: &str,
    options: batos::memory::SearchOptions,
) -> Result<Output, Failure> {
    if !(1..=batos::memory::search::MAX_LIMIT).contains(&options.limit) {
        return Err(bad_input(format!("--k must be 1 to {}", batos::memory::search::MAX_LIMIT)));
    }
    if options.words < 0.0 || options.meaning < 0.0 || options.words + options.meaning <= 0.0 {
        return Err(bad_input(
            "the weights of words and meaning must not be negative, and one must be above 0",
        ));
    }
    let hits = crate::memory().search(rt, query, options)?;
    Ok(render::hits(&hits))
}

/// A batos JSON value, objects named by root or oid.
fn value(rt: &Runtime, json: &serde_json::Value) -> Result<Value, Failure> {
    json::from_json(json, &mut |name| rt.resolve(name).map_err(|e| e.to_string()))
        .map_err(bad_input)
}

/// Sends; a message nobody understands starts a cycle (unless `synthesise` is false),
/// its events published with `cause`. The mind is loaded only when a cycle starts, and
/// not for a selector no method could have.
fn send(
    kernel: &Kernel,
    request: &batos::synthesis::Request,
    synthesise: bool,
    cause: Option<&Cause>,
    cancel: &Arc<AtomicBool>,
) -> Result<Value, Failure> {
    let rt = &kernel.runtime;
    match rt.send(request.receiver, &request.selector, request.args.clone()) {
        Err(e)
            if synthesise
                && batos::synthesis::starts_cycle(request, &e)
                && batos::synthesis::candidate::rust_name(&request.selector).is_some() => {}
        other => return Ok(other?),
    }
    let synthesizer = synthesizer(kernel, cancel)?;
    let events = kernel.events.clone();
    let cause = cause.cloned();
    let sent = synthesizer.send(request, &|e| {
        events.publish(cause.clone(), cycle_event(e));
    });
    if let Err(e) = &sent {
        leave_pheromone(rt, request, e);
    }
    Ok(sent?)
}

/// The synthesizer of a person's request on this kernel: the image's mind and its
/// companion if it has one, the crucible if the personas review, the memory's embedder for retrieval.
fn synthesizer(kernel: &Kernel, cancel: &Arc<AtomicBool>) -> Result<Synthesizer, Failure> {
    let rt = &kernel.runtime;
    let mind = crate::minds().mind_of(rt)?;
    let companion = crate::minds().companion_of(rt)?.map(|(_, mind)| mind);
    let options = Options {
        crucible: batos::composite::crucible::PersonaCritic::if_enabled(rt, crate::minds())?,
        ..Options::default()
    };
    Ok(Synthesizer::new(
        rt.clone(),
        kernel.sandbox.clone(),
        mind,
        &crate::workspace_dir(),
        options,
    )?
    .with_companion(companion)
    .cancelled_by(cancel.clone())
    .retrieving_with(std::sync::Arc::new(|| crate::memory().embedder().map_err(|e| e.to_string()))))
}

/// Runs (or joins) the cycle that makes the receiver understand the request's
/// selector, without sending it: a job's first step.
pub(crate) fn synthesize(
    kernel: &Kernel,
    request: &batos::synthesis::Request,
    cause: Option<&Cause>,
    cancel: &Arc<AtomicBool>,
) -> Result<(), Failure> {
    let synthesizer = synthesizer(kernel, cancel)?;
    let events = kernel.events.clone();
    let cause = cause.cloned();
    let made = synthesizer.synthesize(request, &|e| {
        events.publish(cause.clone(), cycle_event(e));
    });
    if let Err(e) = &made {
        leave_pheromone(&kernel.runtime, request, e);
    }
    Ok(made?)
}

/// A cycle that could not verify a method leaves a pheromone: the routing draws BRICK
/// and ALFRED toward the next conversation. Asking for a grant is not a failure of
/// verification, and a cancelled cycle was not allowed to finish.
fn leave_pheromone(rt: &Runtime, request: &batos::synthesis::Request, e: &batos::Error) {
    let failed_verification = matches!(e, batos::Error::Failed(m) if !m.contains("cancelled"))
        || matches!(e, batos::Error::NeedsExample { .. });
    if failed_verification {
        let note = format!("`{}` on {}: {}", request.selector, request.receiver, e);
        let deposited = rt.transact("a failed cycle leaves a pheromone", |cx| {
            batos::composite::ether::deposit(
                cx.tx_mut("deposit a pheromone")?,
                batos::composite::ether::FAILED_VERIFICATION,
                1.0,
                &note,
                batos::composite::now_ms(),
            )
        });
        if let Err(why) = deposited {
            tracing::warn!("cannot deposit a pheromone: {why}");
        }
    }
}

/// A cycle's event as the protocol tells it.
pub fn cycle_event(event: &batos::synthesis::Event) -> Event {
    use batos::synthesis::Event as E;
    let line = render::describe(event);
    let (cycle, phase, state, detail, round, candidate) = match event {
        E::Started { cycle, selector } => (cycle, "started", None, selector.clone(), None, None),
        E::Joined { cycle } => (cycle, "joined", None, String::new(), None, None),
        E::State { cycle, state, detail } => {
            (cycle, "state", Some(state.as_str().to_owned()), detail.clone(), None, None)
        }
        E::Attempt { cycle, round, candidate, outcome, detail } => (
            cycle,
            "attempt",
            Some(outcome.to_string()),
            detail.clone(),
            Some(*round),
            Some(*candidate),
        ),
        E::Text { cycle, round, candidate, text } => {
            (cycle, "text", None, text.clone(), Some(*round), Some(*candidate))
        }
    };
    Event::Cycle {
        cycle: cycle.clone(),
        phase: phase.into(),
        line,
        state,
        detail,
        round,
        candidate,
    }
}

fn plugin_event(kernel: &Kernel, cause: Option<&Cause>, change: &str, p: &plugin::Installed) {
    let target = kernel.runtime.resolve(&p.target).map(|o| o.to_string()).unwrap_or_default();
    kernel.events.publish(
        cause.cloned(),
        Event::Plugin {
            change: change.into(),
            name: p.name.clone(),
            target,
            selector: p.selector.clone(),
        },
    );
}

fn plugin_stats(kernel: &Kernel) -> Result<Output, Failure> {
    let rt = &kernel.runtime;
    let stats = kernel.sandbox.stats(rt.image())?;
    let mut text = String::new();
    let mut out = Vec::new();
    for p in plugin::list(rt)? {
        let s = stats.get(&p.component.hash).cloned().unwrap_or_default();
        let failures: u64 = s.failures.values().sum();
        text.push_str(&format!(
            "{:<14} calls {:<6} failures {:<4} fuel {:<10}",
            p.name, s.calls, failures, s.fuel_used
        ));
        if let Some(e) = &s.last_error {
            text.push_str(&format!(" last error: {e}"));
        }
        text.push('\n');
        out.push(json!({
            "name": p.name, "calls": s.calls, "failures": s.failures, "fuel_used": s.fuel_used, "last_error": s.last_error,
        }));
    }
    Ok(Output { text: text.trim_end().to_owned(), json: json!(out) })
}

/// Model pull progress as events.
struct Progress<'a> {
    kernel: &'a Kernel,
    cause: Option<&'a Cause>,
    model: String,
    step: String,
    done: u64,
    total: Option<u64>,
    told: std::time::Instant,
}

impl Progress<'_> {
    fn tell(&mut self, step: &str) {
        self.told = std::time::Instant::now();
        self.kernel.events.publish(
            self.cause.cloned(),
            Event::Model {
                model: self.model.clone(),
                step: step.to_owned(),
                done: self.done,
                total: self.total,
            },
        );
    }
}

impl pull::Progress for Progress<'_> {
    fn start(&mut self, step: &str, total: Option<u64>) {
        self.step = step.to_owned();
        self.done = 0;
        self.total = total;
        let step = self.step.clone();
        self.tell(&step);
    }
    fn advance(&mut self, n: u64) {
        self.done += n;
        // A few events a second, not one per buffer.
        if self.told.elapsed() >= std::time::Duration::from_millis(200) {
            let step = self.step.clone();
            self.tell(&step);
        }
    }
    fn finish(&mut self) {
        let step = self.step.clone();
        self.tell(&step);
    }
}

pub(crate) fn model_pull(
    kernel: &Kernel,
    cause: Option<&Cause>,
    name: Option<String>,
) -> Result<Output, Failure> {
    let name = name.unwrap_or_else(|| pull::CATALOGUE[0].name.to_owned());
    let mut progress = Progress {
        kernel,
        cause,
        model: name.clone(),
        step: String::new(),
        done: 0,
        total: None,
        told: std::time::Instant::now(),
    };
    let model = pull::pull(&name, &pull::models_dir(), &mut progress).map_err(|e| {
        let what = matches!(e, pull::PullError::UnknownModel(_)).then(|| "model".to_owned());
        Failure(batos_protocol::ErrorBody {
            kind: e.kind().to_owned(),
            what,
            message: e.to_string(),
            grants: vec![],
        })
    })?;
    progress.tell("done");
    Ok(render::imported_output(&model))
}

/// Words into a message by the image's mind, constrained to the message's shape.
fn translate_words(rt: &Arc<Runtime>, words: &str) -> Result<Output, Failure> {
    let mind = crate::minds().mind_of(rt)?;
    let objects: Vec<String> = rt.view(|cx| cx.tx().roots())?.into_keys().collect();
    let sampling = batos::mind::Sampling {
        max_tokens: 96,
        constraint: Some(translate::constraint(&objects)),
        ..Default::default()
    };
    let answer = mind
        .complete(&translate::messages(words, &objects), &sampling, &mut |_| {})
        .map_err(|e| Failure(batos_protocol::ErrorBody::new("mind_unavailable", e.to_string())))?
        .text;
    let message = translate::parse(&answer).map_err(|why| {
        bad_input(format!(
            "the mind did not turn that into a message ({why}; it said: {}); write it as OBJECT SELECTOR ARGS",
            answer.trim()
        ))
    })?;
    let line = message.words();
    Ok(Output { text: line.join(" "), json: json!({ "words": line }) })
}
