//! A test double for the mind: `ScriptedTestMind` answers from a script, in order, and
//! keeps every prompt with the sampling it was asked with; with a gate, its first answer
//! waits until the test lets it go. It is not a model.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Mutex};

use batos_mind::{Completion, Finish, Message, Mind, MindError, Role, Sampling};

/// The scripted mind.
#[derive(Default)]
pub struct ScriptedTestMind {
    answers: Mutex<VecDeque<String>>,
    /// Every prompt, with the sampling it came with.
    pub prompts: Mutex<Vec<(Vec<Message>, Sampling)>>,
    /// When set, the next answer waits for the test's signal.
    pub gate: Mutex<Option<mpsc::Receiver<()>>>,
    /// What it says it is, when a test tells two apart.
    name: Option<String>,
}

impl ScriptedTestMind {
    /// Answers `answers`, in order, then fails ("the script ran out").
    pub fn new(answers: &[&str]) -> Arc<ScriptedTestMind> {
        Arc::new(ScriptedTestMind {
            answers: Mutex::new(answers.iter().map(|a| (*a).to_owned()).collect()),
            ..ScriptedTestMind::default()
        })
    }

    /// [`ScriptedTestMind::new`] that describes itself as `name`.
    pub fn named(name: &str, answers: &[&str]) -> Arc<ScriptedTestMind> {
        Arc::new(ScriptedTestMind {
            answers: Mutex::new(answers.iter().map(|a| (*a).to_owned()).collect()),
            name: Some(name.to_owned()),
            ..ScriptedTestMind::default()
        })
    }

    /// How many times it was asked.
    pub fn calls(&self) -> usize {
        self.prompts.lock().expect("prompts").len()
    }

    /// The messages of the `n`th prompt with `role`, joined.
    pub fn said(&self, n: usize, role: Role) -> String {
        let prompts = self.prompts.lock().expect("prompts");
        prompts[n].0.iter().filter(|m| m.role == role).map(|m| m.content.clone()).collect()
    }

    /// The user message of the `n`th prompt.
    pub fn user(&self, n: usize) -> String {
        self.said(n, Role::User)
    }

    /// The system message of the `n`th prompt.
    pub fn system(&self, n: usize) -> String {
        self.said(n, Role::System)
    }

    /// The whole last prompt, its messages joined by lines.
    pub fn last_prompt(&self) -> String {
        self.prompts
            .lock()
            .expect("prompts")
            .last()
            .map(|(m, _)| m.iter().map(|m| m.content.clone()).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Mind for ScriptedTestMind {
    fn describe(&self) -> String {
        self.name.clone().unwrap_or_else(|| "scripted test double".into())
    }
    fn complete(
        &self,
        messages: &[Message],
        sampling: &Sampling,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, MindError> {
        if let Some(gate) = self.gate.lock().expect("gate").take() {
            gate.recv().map_err(|_| MindError::Model("the test dropped the gate".into()))?;
        }
        self.prompts.lock().expect("prompts").push((messages.to_vec(), sampling.clone()));
        let text = self
            .answers
            .lock()
            .expect("answers")
            .pop_front()
            .ok_or_else(|| MindError::Model("the script ran out".into()))?;
        on_text(&text);
        Ok(Completion {
            text,
            prompt_tokens: Some(30),
            cached_tokens: None,
            completion_tokens: Some(20),
            finish: Finish::Stop,
        })
    }
}
