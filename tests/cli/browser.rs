//! The browser UI in a real browser: Debian's chromium, driven through chromedriver
//! (WebDriver) by fantoccini, against a real `batos serve` on loopback. Each test
//! starts and stops everything itself and saves screenshots as artifacts
//! (`tests/support/browser.rs` says where).

use std::path::Path;
use std::time::Duration;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::Locator;
use serde_json::json;

use super::bridge::Kernel;
use super::browser_support::{runtime, Browser};
use super::chat_stub::{answer, answer_bytes, Reply, StubChatServer};
use super::commands::ok_json;
use super::synthesis::{image_thinking_with, DOUBLE};

/// How long a synthesis cycle may take: the first on a machine builds the guest SDK's
/// dependencies for wasm.
const CYCLE_PATIENCE: Duration = Duration::from_secs(600);

/// A kernel serving a fresh image in a temporary folder, and genesis's oid.
struct Served {
    _dir: tempfile::TempDir,
    image: std::path::PathBuf,
    kernel: Kernel,
    genesis: u64,
}

impl Served {
    fn fresh() -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("image");
        let kernel = Kernel::start(&image);
        let genesis = oid_of(&image, "genesis");
        Served { _dir: dir, image, kernel, genesis }
    }

    /// A fresh image in `dir` whose pLLM asks `server`, served.
    fn thinking_with(dir: tempfile::TempDir, server: &StubChatServer) -> Served {
        let image = image_thinking_with(dir.path(), server);
        let workspace = dir.path().join("ws");
        let kernel = Kernel::start_with(&image, &[("BATOS_WORKSPACE", &workspace)]);
        let genesis = oid_of(&image, "genesis");
        Served { _dir: dir, image, kernel, genesis }
    }
}

fn oid_of(image: &Path, root: &str) -> u64 {
    ok_json(image, &["inspect", root])["oid"].as_u64().expect("an oid")
}

#[test]
fn the_world_opens_on_the_roots_and_shows_genesis_with_what_it_inherits() {
    let Served { _dir, image, kernel, genesis } = Served::fresh();
    runtime().block_on(async {
        let b = Browser::open(&kernel.info().login_url(), "world").await;
        b.until("document.querySelector('#connection').dataset.state === 'live'", "a live connection").await;
        // The token moved from the address bar into the session.
        assert_eq!(b.run("return location.hash").await, json!(""));
        let title = b
            .until(&format!("document.querySelector('.morph[data-oid=\"{genesis}\"] .name')?.textContent"), "genesis's morph")
            .await;
        assert_eq!(title, json!(format!("genesis #{genesis}")));
        // What genesis inherits, grouped by the parent it comes from: the primitives.
        let inherited = b
            .until(&format!("[...document.querySelectorAll('.morph[data-oid=\"{genesis}\"] .slots.inherited .slot-row.method')].map(r => r.dataset.slot).join(' ')"), "inherited methods")
            .await;
        assert!(inherited.as_str().is_some_and(|s| s.contains("clone") && s.contains("slotNames")), "{inherited}");
        // Every root is a morph, and the object list holds every reachable object.
        let roots = ok_json(&image, &["awaken"])["roots"].clone();
        for oid in roots.as_object().expect("roots").values() {
            b.until(&format!("document.querySelector('.morph[data-oid=\"{oid}\"]')"), "each root's morph").await;
        }
        let listed = b.until("document.querySelector('#object-count').textContent", "the object count").await;
        assert!(listed.as_str().is_some_and(|s| s.contains("reachable")), "{listed}");
        b.until(&format!("document.querySelector('#object-list .object-row[data-oid=\"{genesis}\"]')"), "genesis in the list").await;
        // Where a selector resolves: `clone` is a native primitive of a parent.
        b.run(&format!("const m = document.querySelector('.morph[data-oid=\"{genesis}\"]'); m.querySelector('.resolve-selector').value = 'clone'; m.querySelector('.resolve-selector').form.requestSubmit();")).await;
        let resolution = b.until(&format!("document.querySelector('.morph[data-oid=\"{genesis}\"] .resolution')?.textContent"), "a resolution").await;
        assert!(resolution.as_str().is_some_and(|s| s.contains("native primitive") && s.contains("resolves on")), "{resolution}");
        b.screenshot("world").await;
        b.close().await;
    });
}

#[test]
fn edits_in_the_page_reach_the_cli_and_cli_changes_reach_the_page() {
    let Served { _dir, image, kernel, genesis } = Served::fresh();
    runtime().block_on(async {
        let b = Browser::open(&kernel.info().login_url(), "edit").await;
        // A change made from the command line appears in the open morph.
        ok_json(&image, &["set", "genesis", "greeting", "\"hello\""]);
        assert_eq!(b.slot_text(genesis, "greeting", "the CLI's change").await, "\"hello\"");
        // Edit in place: not JSON is refused in the page and nothing is sent.
        let cell = b
            .client
            .find(Locator::Css(&format!(".morph[data-oid=\"{genesis}\"] .slot-row[data-slot=\"greeting\"] .value")))
            .await
            .expect("the value cell");
        cell.click().await.expect("click");
        let input = b.client.find(Locator::Css(".morph .slot-row .value input.edit")).await.expect("an input");
        input.clear().await.expect("clear");
        input.send_keys("not json\u{E007}").await.expect("typed");
        let problem = b.until("document.querySelector('.morph .slot-row .value .error')?.textContent", "the JSON error").await;
        assert!(problem.as_str().is_some_and(|p| p.contains("not JSON")), "{problem}");
        assert_eq!(ok_json(&image, &["inspect", "genesis"])["slots"]["greeting"], json!("hello"));
        input.clear().await.expect("clear");
        input.send_keys("{\"n\": 42}\u{E007}").await.expect("typed");
        b.until(&format!("document.querySelector('.morph[data-oid=\"{genesis}\"] .slot-row[data-slot=\"greeting\"] .value')?.textContent === '{{\"n\":42}}'"), "the edited value").await;
        assert_eq!(ok_json(&image, &["inspect", "genesis"])["slots"]["greeting"], json!({ "n": 42 }));
        b.screenshot("edited").await;
        // The object's history, newest first, undoes the edit.
        b.run(&format!("document.querySelector('.morph[data-oid=\"{genesis}\"] details.history').open = true")).await;
        let newest = b
            .until(&format!("document.querySelector('.morph[data-oid=\"{genesis}\"] .history-entry')?.textContent"), "the history")
            .await;
        assert!(newest.as_str().is_some_and(|h| h.contains("greeting")), "{newest}");
        b.run(&format!("document.querySelector('.morph[data-oid=\"{genesis}\"] .history-entry .undo').click()")).await;
        // Wait for the undone value itself: the edited one is on the page until the
        // undo's transaction event arrives.
        b.until(&format!("document.querySelector('.morph[data-oid=\"{genesis}\"] .slot-row[data-slot=\"greeting\"] .value')?.textContent === '\"hello\"'"), "the undone edit").await;
        assert_eq!(ok_json(&image, &["inspect", "genesis"])["slots"]["greeting"], json!("hello"));
        b.close().await;
    });
}

#[test]
fn a_dragged_morph_keeps_its_place_across_a_reload() {
    let Served { _dir, image, kernel, genesis } = Served::fresh();
    runtime().block_on(async {
        let b = Browser::open(&kernel.info().login_url(), "drag").await;
        let morph = format!(".morph[data-oid=\"{genesis}\"]");
        b.until(&format!("document.querySelector('{morph} .name')"), "genesis's morph").await;
        let before = b.run(&format!("const m = document.querySelector('{morph}'); return [m.offsetLeft, m.offsetTop]")).await;
        let handle = b.client.find(Locator::Css(&format!("{morph} .morph-title .name"))).await.expect("the title");
        let drag = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement { element: handle, duration: None, x: 0.0, y: 0.0 })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::MoveBy { duration: Some(Duration::from_millis(100)), x: 180.0, y: 120.0 })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        b.client.perform_actions(drag).await.expect("dragged");
        let placed = b.until(&format!("document.querySelector('{morph}').dataset.placed"), "the place kept").await;
        let after = b.run(&format!("const m = document.querySelector('{morph}'); return [m.offsetLeft, m.offsetTop]")).await;
        assert_eq!(after[0].as_f64().expect("x") - before[0].as_f64().expect("x"), 180.0, "{before} → {after}");
        assert_eq!(after[1].as_f64().expect("y") - before[1].as_f64().expect("y"), 120.0, "{before} → {after}");
        assert_eq!(placed, json!(format!("{},{}", after[0], after[1])));
        b.client.refresh().await.expect("reloads");
        let reloaded = b
            .until(&format!("(m => m && [m.offsetLeft, m.offsetTop])(document.querySelector('{morph}'))"), "the morph after a reload")
            .await;
        assert_eq!(reloaded, after, "the place survives a reload");
        // Dropped on another morph's slot, a morph stores a reference to its object
        // there (and goes back where it was).
        let pllm = oid_of(&image, "pLLM");
        let source = b.client.find(Locator::Css(&format!(".morph[data-oid=\"{pllm}\"] .morph-title .name"))).await.expect("pLLM's title");
        let target = b
            .client
            .find(Locator::Css(&format!("{morph} .slots.own .slot-row[data-slot=\"description\"] .slot-name")))
            .await
            .expect("genesis's description");
        let drop = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement { element: source, duration: None, x: 0.0, y: 0.0 })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::MoveToElement { element: target, duration: Some(Duration::from_millis(100)), x: 0.0, y: 0.0 })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        b.client.perform_actions(drop).await.expect("dropped");
        let shown = b
            .until(&format!("document.querySelector('{morph} .slot-row[data-slot=\"description\"] .value button.ref')?.textContent"), "the reference as a link")
            .await;
        assert_eq!(shown, json!(format!("pLLM #{pllm}")));
        assert_eq!(ok_json(&image, &["inspect", "genesis"])["slots"]["description"], json!({ "$object": pllm }));
        b.close().await;
    });
}

#[test]
fn a_plugin_uploaded_from_the_page_is_installed_and_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    let kernel = Kernel::start(&image);
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .canonicalize()
        .expect("the plugins folder");
    runtime().block_on(async {
        let b = Browser::open(&kernel.info().login_url(), "plugin").await;
        b.run("document.querySelector('#tabs button[data-tab=\"plugins\"]').click()").await;
        b.until("document.querySelector('#plugin-list')?.textContent.includes('no plugins')", "the empty list").await;
        let file = b.client.find(Locator::Css("#plugin-file")).await.expect("the file input");
        file.send_keys(&plugins.join("double.wat").display().to_string()).await.expect("chosen");
        let manifest = b.client.find(Locator::Css("#plugin-manifest")).await.expect("the manifest input");
        manifest.send_keys(&plugins.join("double.toml").display().to_string()).await.expect("chosen");
        b.run("document.querySelector('#plugin-upload').requestSubmit()").await;
        let said = b.until("(t => t.includes('installed') && t)(document.querySelector('#plugin-result').textContent)", "the install").await;
        assert!(said.as_str().is_some_and(|s| s.contains("double:")), "{said}");
        assert_eq!(ok_json(&image, &["send", "genesis", "double:", "21"])["result"], 42);
        // Its statistics follow the call, from the event stream and a reload of the tab.
        b.run("document.querySelector('#tabs button[data-tab=\"objects\"]').click(); document.querySelector('#tabs button[data-tab=\"plugins\"]').click()").await;
        b.until("document.querySelector('#plugin-list tr[data-plugin=\"double\"]')?.textContent.includes('1 call(s)')", "the call counted").await;
        b.screenshot("plugins").await;
        b.close().await;
    });
}

#[test]
fn messages_sent_from_the_page_answer_values_and_new_morphs() {
    let Served { _dir, image, kernel, genesis } = Served::fresh();
    ok_json(&image, &["set", "genesis", "greeting", "\"hello\""]);
    runtime().block_on(async {
        let b = Browser::open(&kernel.info().login_url(), "send").await;
        let morph = format!(".morph[data-oid=\"{genesis}\"]");
        b.until(&format!("document.querySelector('{morph} .send-box')"), "the send box").await;
        // The send box, with an argument.
        b.run(&format!("const f = document.querySelector('{morph} .send-box'); f.querySelector('.selector').value = 'slot:'; f.querySelector('.args').value = '\"greeting\"'; f.requestSubmit();")).await;
        let answer = b.until(&format!("document.querySelector('{morph} .answer')?.textContent"), "the answer").await;
        assert_eq!(answer, json!("slot: → \"hello\""));
        // A wrong argument count is refused in the page, before anything is sent.
        b.run(&format!("const f = document.querySelector('{morph} .send-box'); f.querySelector('.selector').value = 'slot:'; f.querySelector('.args').value = ''; f.requestSubmit();")).await;
        let problem = b.until(&format!("document.querySelector('{morph} .send-box .error')?.textContent"), "the count error").await;
        assert!(problem.as_str().is_some_and(|p| p.contains("takes 1 argument")), "{problem}");
        // Clicking an understood message: `clone` answers an object, which opens as a morph.
        let morphs = b.run("return document.querySelectorAll('.morph').length").await;
        b.run(&format!("document.querySelector('{morph} .slots.inherited .slot-row[data-slot=\"clone\"] .slot-name').click()")).await;
        b.until(&format!("document.querySelectorAll('.morph').length > {morphs}"), "the clone's morph").await;
        let clones = ok_json(&image, &["history"]);
        assert!(clones.to_string().contains("clone"), "the clone was committed: {clones}");
        b.screenshot("sent").await;
        b.close().await;
    });
}

#[test]
fn a_synthesis_is_watched_from_the_page_until_the_method_appears_on_the_morph() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = StubChatServer::start(vec![answer(DOUBLE)]);
    let Served { _dir, kernel, genesis, .. } = Served::thinking_with(dir, &server);
    runtime().block_on(async {
        let b = Browser::open(&kernel.info().login_url(), "synthesis").await;
        let morph = format!(".morph[data-oid=\"{genesis}\"]");
        b.until(&format!("document.querySelector('{morph} .send-box')"), "the send box").await;
        b.run(&format!(
            "const f = document.querySelector('{morph} .send-box'); f.querySelector('.selector').value = 'double:'; \
             f.querySelector('.args').value = '21'; f.querySelector('.brief').value = 'twice the number'; \
             f.querySelector('.examples').value = '3 => 6'; f.requestSubmit();"
        ))
        .await;
        let answer = b.until_within(&format!("document.querySelector('{morph} .answer')?.textContent"), "the answer", CYCLE_PATIENCE).await;
        assert_eq!(answer, json!("double: → 42"));
        // The panel saw the states in the order the cycle went through them.
        let states = b
            .until("[...document.querySelectorAll('#cycle-timeline li')].map(l => l.dataset.state).join(' ')", "the timeline")
            .await;
        let states = states.as_str().unwrap_or_default().to_owned();
        let mut last = 0;
        for state in ["DECOMPOSING", "SYNTHESIZING", "COMPLETE"] {
            let at = states[last..].find(state).map(|i| i + last);
            assert!(at.is_some(), "{state} after the earlier states in: {states}");
            last = at.unwrap_or(last);
        }
        // The mind's text streamed in, and each attempt shows its code and fate.
        let streamed = b.until("document.querySelector('#cycle-stream-text').textContent", "the mind's text").await;
        assert!(streamed.as_str().is_some_and(|s| s.contains("fn double")), "{streamed}");
        let attempts = b
            .until("document.querySelectorAll('#cycle-attempts .attempt.passed').length >= 1 && [...document.querySelectorAll('#cycle-attempts .attempt')].map(a => a.textContent).join('\\n')", "the attempts")
            .await;
        assert!(attempts.as_str().is_some_and(|a| a.contains("a * 2") && a.contains("passed")), "{attempts}");
        // The new method appears on the morph, from the event stream alone.
        b.until(&format!("document.querySelector('{morph} .slots.own .slot-row.method[data-slot=\"double:\"]')"), "the new method").await;
        b.screenshot("synthesis").await;
        // Past cycles are browsable.
        b.run("document.querySelector('#tabs button[data-tab=\"cycles\"]').click()").await;
        b.until("[...document.querySelectorAll('#cycle-list .row')].some(r => r.textContent.includes('c1 COMPLETE double:'))", "the cycle in the list").await;
        // And so is the metacognition journal, filtered.
        b.run("document.querySelector('#tabs button[data-tab=\"journal\"]').click()").await;
        let all = b.until("document.querySelectorAll('#journal-list .row').length", "the journal").await;
        b.run("const f = document.querySelector('#journal-filter'); f.value = 'COMPLETE'; f.dispatchEvent(new Event('input'))").await;
        let complete = b
            .until("[...document.querySelectorAll('#journal-list .row')].map(r => r.textContent).filter(t => t.includes('COMPLETE')).length === document.querySelectorAll('#journal-list .row').length && document.querySelectorAll('#journal-list .row').length", "the filtered journal")
            .await;
        assert!(complete.as_u64() < all.as_u64(), "{complete} of {all} entries");
        b.close().await;
    });
}

#[test]
fn a_cycle_watched_from_the_page_is_cancelled_from_its_panel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (release, gate) = std::sync::mpsc::channel();
    let server = StubChatServer::start(vec![Reply::Gated(answer_bytes(DOUBLE), gate)]);
    let Served { _dir, image, kernel, genesis } = Served::thinking_with(dir, &server);
    runtime().block_on(async {
        let b = Browser::open(&kernel.info().login_url(), "cancel").await;
        let morph = format!(".morph[data-oid=\"{genesis}\"]");
        b.until(&format!("document.querySelector('{morph} .send-box')"), "the send box").await;
        b.run(&format!(
            "const f = document.querySelector('{morph} .send-box'); f.querySelector('.selector').value = 'double:'; \
             f.querySelector('.args').value = '21'; f.querySelector('.examples').value = '3 => 6'; f.requestSubmit();"
        ))
        .await;
        // The cycle waits on its mind; the panel's Cancel stops it.
        server.arrived.recv().expect("the kernel asks its mind");
        b.until("!document.querySelector('#cycle-cancel').hidden", "the Cancel button").await;
        b.run("document.querySelector('#cycle-cancel').click()").await;
        release.send(()).expect("the mind answers now");
        let failed = b.until("document.querySelector('#cycle-timeline li[data-state=\"FAILED\"]')?.textContent", "the failure").await;
        assert!(failed.as_str().is_some_and(|f| f.contains("cancelled")), "{failed}");
        let error = b.until(&format!("document.querySelector('{morph} .result .error')?.textContent"), "the send's error").await;
        assert!(error.as_str().is_some_and(|e| e.contains("cancelled")), "{error}");
        assert!(ok_json(&image, &["inspect", "genesis"])["slots"].get("double:").is_none(), "nothing installed");
        b.close().await;
    });
}

/// A display that tries to run a script: it must render, and the script must not run.
const DISPLAY: &str = "```rust\nfn display_yourself(this: &Object) -> String {\n    let _ = this;\n    \"<h1 id=\\\"shown\\\">genesis displays itself</h1><script>document.body.append(Object.assign(document.createElement('p'), {id: 'ran'})); parent.document.title = 'escaped';</script>\".to_string()\n}\n```";

#[test]
fn display_yourself_is_rendered_sandboxed_and_its_script_does_not_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The cycle asks for examples first (none come back), then for candidates, two of
    // which agree.
    let server = StubChatServer::start(vec![
        answer("none"),
        answer(DISPLAY),
        answer(DISPLAY),
        answer(DISPLAY),
    ]);
    let Served { _dir, image, kernel, genesis } = Served::thinking_with(dir, &server);
    runtime().block_on(async {
        let b = Browser::open(&kernel.info().login_url(), "display").await;
        let morph = format!(".morph[data-oid=\"{genesis}\"]");
        b.until(&format!("document.querySelector('{morph} .send-box')"), "the morph").await;
        b.run(&format!("document.querySelector('{morph} .halo .display').click()")).await;
        let frame = b.until_within(&format!("document.querySelector('{morph} iframe.display-frame')"), "the display", CYCLE_PATIENCE).await;
        assert!(!frame.is_null());
        let sandbox = b.run(&format!("return document.querySelector('{morph} iframe.display-frame').getAttribute('sandbox')")).await;
        assert_eq!(sandbox, json!(""), "a sandbox with no permissions: no scripts, no same origin");
        let title = b.run("return document.title").await;
        assert_eq!(title, json!("batos"));
        let frame = b.client.find(Locator::Css(&format!("{morph} iframe.display-frame"))).await.expect("the frame");
        frame.enter_frame().await.expect("into the frame");
        let shown = b.client.find(Locator::Css("#shown")).await.expect("the fragment rendered");
        assert_eq!(shown.text().await.expect("text"), "genesis displays itself");
        assert!(b.client.find(Locator::Css("#ran")).await.is_err(), "the fragment's script ran");
        b.client.enter_parent_frame().await.expect("back");
        assert_eq!(b.run("return document.title").await, json!("batos"));
        // The method is installed like any other: a second display needs no mind.
        let resolved = ok_json(&image, &["send", "genesis", "display_yourself"]);
        assert!(resolved["result"].as_str().is_some_and(|h| h.contains("<h1")), "{resolved}");
        b.screenshot("display").await;
        b.close().await;
    });
}

#[test]
fn the_page_reconnects_after_a_kernel_restart_and_catches_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    let kernel = Kernel::start(&image);
    let address = kernel.info().address.clone();
    let url = kernel.info().login_url();
    let genesis = oid_of(&image, "genesis");
    ok_json(&image, &["set", "genesis", "count", "1"]);
    runtime().block_on(async {
        let b = Browser::open(&url, "restart").await;
        assert_eq!(b.slot_text(genesis, "count", "the first value").await, "1");
        assert!(kernel.stop().success(), "the kernel stops cleanly");
        b.until("document.querySelector('#connection').dataset.state === 'reconnecting'", "the lost connection").await;
        // While no kernel serves, the command line opens the image itself.
        ok_json(&image, &["set", "genesis", "count", "2"]);
        let kernel = Kernel::start_on(&image, &address, &[]);
        assert_eq!(kernel.info().login_url(), url, "the same address and token");
        b.until("document.querySelector('#connection').dataset.state === 'live'", "the connection again").await;
        b.until(&format!("document.querySelector('.morph[data-oid=\"{genesis}\"] .slot-row[data-slot=\"count\"] .value')?.textContent === '2'"), "the change made while it was down").await;
        // And it is live again.
        ok_json(&image, &["set", "genesis", "count", "3"]);
        b.until(&format!("document.querySelector('.morph[data-oid=\"{genesis}\"] .slot-row[data-slot=\"count\"] .value')?.textContent === '3'"), "a change after the restart").await;
        b.screenshot("restarted").await;
        b.close().await;
    });
}

#[test]
fn the_mind_tab_plots_the_heartbeat_live_and_asks_a_persona() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        StubChatServer::start(vec![answer("A brick is a persona who takes things apart.")]);
    let image = image_thinking_with(dir.path(), &server);
    // A beat a second, never acting: the plot grows from the event stream alone.
    ok_json(&image, &["set", "heartbeat", "intervalSeconds", "1"]);
    ok_json(&image, &["set", "heartbeat", "stagnantBeats", "100000"]);
    let kernel = Kernel::start(&image);
    runtime().block_on(async {
        let b = Browser::open(&kernel.info().login_url(), "mind").await;
        b.until("document.querySelector('#connection').dataset.state === 'live'", "a live connection").await;
        b.run("document.querySelector('#tabs button[data-tab=\"mind\"]').click()").await;
        let points = b
            .until("(document.querySelector('#cem-plot polyline')?.getAttribute('points') || '').split(' ').length >= 3 && document.querySelector('#cem-plot polyline').getAttribute('points')", "three beats plotted")
            .await;
        assert!(points.as_str().is_some_and(|p| p.contains(',')), "{points}");
        b.until("document.querySelector('#cem-plot line.threshold')", "the threshold").await;
        let now = b.until("document.querySelector('#cem-now').textContent", "the metric now").await;
        assert!(now.as_str().is_some_and(|n| n.starts_with("now 0.000") && n.contains("heartbeat on")), "{now}");
        b.run("document.querySelector('#chat-persona').value = 'brick'; document.querySelector('#chat-question').value = 'What is a brick?'; document.querySelector('#chat-form').requestSubmit();").await;
        // Streamed in as it is written, then the whole exchange with how it was routed.
        let turn = b.until("document.querySelector('#chat-log').textContent.includes('asked by name') && document.querySelector('#chat-log').textContent", "BRICK's answer").await;
        assert!(turn.as_str().is_some_and(|t| t.contains("BRICKA brick is a persona who takes things apart.")), "{turn}");
        b.screenshot("mind").await;
        b.close().await;
    });
}
