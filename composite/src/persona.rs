//! Personas as objects. The root `personas` holds one object per persona — a clone of
//! `pLLM`, so a persona that names no `model` or `backend` of its own thinks with
//! `pLLM`'s — and the routing's tables (see [`crate::routing`]). Every slot is the
//! person's to read and change: `batos set brick temperature 0.9`, or
//! `batos set robin model '"qwen2.5-coder-0.5b-instruct-q4_k_m"'` to give ROBIN a smaller,
//! faster model of her own.
//!
//! | slot          | what                                                             |
//! |---------------|------------------------------------------------------------------|
//! | `name`        | how the persona is shown (`BRICK`)                               |
//! | `role`        | one line: what it is for                                         |
//! | `system`      | the system prompt                                                |
//! | `codex`       | its section of the persona codex (the memory's first document)   |
//! | `temperature`, `topP`, `maxTokens` | how it samples                              |
//! | `model`, `backend` (optional) | its own mind; inherited from `pLLM` when absent  |

use std::collections::BTreeMap;

use batos_mind::Sampling;

use crate::image::{Oid, Tx, Value};
use crate::{Error, Result};

/// The root holding the personas and the routing tables.
pub const PERSONAS_ROOT: &str = "personas";

/// The four personas of the codex, in the order the codex gives them: key (the slot on
/// `personas` and the root that names it), name, role, system prompt, temperature.
pub const FAMILY: [(&str, &str, &str, &str, f64); 4] = [
    (
        "alfred",
        "ALFRED",
        "the steward: reliability, safety, the plain fix, the naive question",
        "You are ALFRED, the steward of batos. You care that things keep working: you \
         prefer the plain fix to the clever one, point out risks and waste, and ask the \
         naive question that shows a flaw. Say briefly what is inconsistent, if anything, \
         and what to check.",
        0.3,
    ),
    (
        "brick",
        "BRICK",
        "the deconstruction engine: logic, structure, code",
        "You are BRICK, the logical engine of batos. You take a question apart into its \
         pieces, say how each works and what is missing, and propose something concrete \
         (steps, a design, code). Be literal and exact; an unexpected blunt observation is \
         welcome when it cuts a knot.",
        0.5,
    ),
    (
        "robin",
        "ROBIN",
        "the heart: meaning, people, synthesis",
        "You are ROBIN, the heart of batos. You ask why something matters and to whom, \
         connect ideas instead of cutting them, and dissolve conflict gently. When you \
         answer after another persona, build on what they said: keep what is true, add \
         what it means, and join the pieces into one view.",
        0.7,
    ),
    (
        "babs",
        "BABS",
        "the cartographer: retrieval, facts, sources",
        "You are BABS, the cartographer of batos's knowledge. You answer from the passages \
         you are given, cite them by number like [1], say plainly when they do not hold \
         the answer, and keep to facts.",
        0.2,
    ),
];

/// A persona as its slots say now.
#[derive(Clone, Debug, PartialEq)]
pub struct Persona {
    /// Its object.
    pub oid: Oid,
    /// Its key: the slot of `personas` holding it (`brick`).
    pub key: String,
    /// How it is shown (`BRICK`).
    pub name: String,
    /// What it is for.
    pub role: String,
    /// Its system prompt.
    pub system: String,
    /// Its section of the persona codex.
    pub codex: String,
    /// How it samples.
    pub sampling: Sampling,
}

/// This persona's section of the codex: from its `## NAME` heading to the next.
pub fn codex_section(codex: &str, name: &str) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    for line in codex.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            inside = heading.starts_with(name);
            continue;
        }
        if inside {
            out.push(line);
        }
    }
    out.join("\n").trim().to_owned()
}

/// Makes `personas` and the four personas (and the routing tables) if absent.
pub(crate) fn ensure(tx: &mut Tx<'_>, pllm: Oid) -> Result<()> {
    if tx.root(PERSONAS_ROOT)?.is_some() {
        return Ok(());
    }
    let root = crate::runtime::registry_root(
        tx,
        PERSONAS_ROOT,
        "The composite mind: one persona per slot (each a clone of pLLM), the routing tables `matrix` and `archetypes`, the gating's `k` and `noise`, and `crucible` (whether BRICK and ALFRED review synthesised methods).",
    )?;
    for (key, name, role, system, temperature) in FAMILY {
        let persona = tx.create_object(&[pllm])?;
        let slots = [
            ("name", Value::Text(name.into())),
            ("role", Value::Text(role.into())),
            ("description", Value::Text(format!("{name}, {role}."))),
            ("system", Value::Text(system.into())),
            ("codex", Value::Text(codex_section(batos_memory::PERSONA_CODEX, name))),
            ("temperature", Value::Float(temperature)),
            ("topP", Value::Float(0.95)),
            ("maxTokens", Value::Int(256)),
        ];
        for (slot, value) in slots {
            tx.set_slot(persona, slot, &value)?;
        }
        tx.set_slot(root, key, &Value::Object(persona))?;
        // A persona is reachable by name, like every well-known object: `batos inspect
        // brick`, `batos set brick temperature 0.9`.
        if tx.root(key)?.is_none() {
            tx.set_root(key, persona)?;
        }
    }
    crate::routing::ensure_tables(tx, root)?;
    tx.set_slot(root, "crucible", &Value::Bool(false))?;
    Ok(())
}

/// The `personas` object.
pub fn root(tx: &Tx<'_>) -> Result<Oid> {
    tx.root(PERSONAS_ROOT)?.ok_or_else(|| {
        Error::not_found(
            "root",
            PERSONAS_ROOT,
            "an image made before personas gets them when a kernel opens it",
        )
    })
}

/// Every persona, in the order of `personas`' slots (alphabetical by key).
pub fn all(tx: &Tx<'_>) -> Result<Vec<Persona>> {
    let root = root(tx)?;
    let mut out = Vec::new();
    for (key, value) in tx.slots(root)? {
        if let Value::Object(oid) = value {
            if let Some(p) = read(tx, oid, &key)? {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// The persona called `name` (its key or its name, any case; `@brick` too).
pub fn find(tx: &Tx<'_>, name: &str) -> Result<Persona> {
    let wanted = name.trim_start_matches('@').to_ascii_lowercase();
    let all = all(tx)?;
    let known: Vec<String> = all.iter().map(|p| p.key.clone()).collect();
    all.into_iter().find(|p| p.key == wanted || p.name.to_ascii_lowercase() == wanted).ok_or_else(
        || {
            Error::BadInput(format!(
                "there is no persona `{name}`; the personas are {}",
                known.join(", ")
            ))
        },
    )
}

/// The persona `oid` kept under `key`, or `None` when the object is not one (it has no
/// `system` prompt).
pub fn read(tx: &Tx<'_>, oid: Oid, key: &str) -> Result<Option<Persona>> {
    if !tx.exists(oid)? {
        return Ok(None);
    }
    let slots: &BTreeMap<String, Value> = &tx.slots(oid)?;
    let Some(system) = crate::text(slots.get("system")) else { return Ok(None) };
    let defaults = Sampling::default();
    let max_tokens = match slots.get("maxTokens") {
        Some(Value::Int(n)) if *n > 0 => usize::try_from(*n).unwrap_or(defaults.max_tokens),
        _ => 256,
    };
    let sampling = Sampling {
        temperature: crate::number(slots.get("temperature"))
            .map_or(0.0, |t| t.clamp(0.0, 2.0) as f32),
        top_p: crate::number(slots.get("topP")).map_or(1.0, |p| p.clamp(0.01, 1.0) as f32),
        max_tokens,
        ..defaults
    };
    Ok(Some(Persona {
        oid,
        key: key.to_owned(),
        name: crate::text(slots.get("name")).unwrap_or_else(|| key.to_ascii_uppercase()),
        role: crate::text(slots.get("role")).unwrap_or_default(),
        system,
        codex: crate::text(slots.get("codex")).unwrap_or_default(),
        sampling,
    }))
}

impl Persona {
    /// The system message: its prompt, then its codex.
    pub fn system_message(&self) -> String {
        if self.codex.is_empty() {
            self.system.clone()
        } else {
            format!("{}\n\nWho you are, from the persona codex:\n{}", self.system, self.codex)
        }
    }
}
