//! The composite mind in your own program: an image with personas, a question routed to
//! two of them, and the Socratic Contrapunto they answer in — with the embedded model
//! and the embedding model (both pulled on first use).
//! `cargo run --release -p batos --example personas -- /tmp/personas-image "why keep an image?"`

use batos::composite::dialogue::Ask;
use batos::Runtime;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "personas-image".into());
    let question = args.next().unwrap_or_else(|| "Why keep a living image?".into());

    let minds = batos::minds();
    let memory = batos::memory();
    // The personas are made when the image is awakened, like pLLM and the memory.
    let rt =
        batos::composite::attach(memory.attach(minds.attach(Runtime::builder()))).open(&path)?;
    batos::composite::prepare(&rt)?;

    let ask =
        Ask { question: &question, persona: None, seed: 7, now_ms: batos::composite::now_ms() };
    let mut speaking = String::new();
    let dialogue =
        batos::composite::converse(&rt, &minds, &memory, &ask, &mut |persona, piece| {
            if persona != speaking {
                print!("\n{}: ", persona.to_uppercase());
                speaking = persona.to_owned();
            }
            print!("{piece}");
        })?;
    println!("\n\nrouted as \"{}\"; kept as {}", dialogue.decision.archetype, dialogue.id);
    for source in &dialogue.sources {
        println!("[{}] {}", source.n, source.source);
    }
    Ok(())
}
