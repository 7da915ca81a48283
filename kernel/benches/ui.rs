//! The browser UI's liveness and weight, measured in Debian's chromium (headless,
//! through chromedriver) against a kernel serving on loopback, in one run: the time from
//! a change's request to the morph showing it (p50/p99) with 1 and with 50 morphs open,
//! beside the change's own round trip over the bridge (the anchor: what any client
//! waits); a change to a parent all 50 morphs show; the page's JavaScript heap with
//! 1,000 objects listed beside the empty image's; and the history tab with 10,000
//! transactions. Run: `cargo bench -p batos-kernel --bench ui`

use std::time::{SystemTime, UNIX_EPOCH};

use batos_client::{Client, ConnectOptions};
use batos_protocol::Request;
use serde_json::{json, Value as Json};

#[path = "../../tests/support/browser.rs"]
mod browser;
#[path = "support/serving.rs"]
mod serving;

use browser::{runtime, Browser};
use serving::Serving;

/// Wall-clock milliseconds: the page stamps its renders with the same clock
/// (`performance.timeOrigin + performance.now()`), on the same machine.
fn wall_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
}

fn ok(client: &mut Client, request: Request) -> Json {
    client
        .request(request, &mut |_| {})
        .expect("the bridge answers")
        .expect("the request succeeds")
        .json
}

fn set(client: &mut Client, object: &str, slot: &str, value: Json) {
    ok(client, Request::Set { object: object.into(), slot: slot.into(), value });
}

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Sets `slot` of `object` to 0, 1, …, `n`-1 and times each until every morph in
/// `watch` shows it (`own` slot or inherited): from the request to the last render, and
/// the request's own round trip.
async fn changes(
    page: &Browser,
    client: &mut Client,
    object: &str,
    slot: &str,
    watch: &[u64],
    own: bool,
    n: usize,
) -> ((f64, f64), (f64, f64)) {
    let section = if own { "own" } else { "inherited" };
    let oids = serde_json::to_string(watch).expect("json");
    let (mut shown, mut acked) = (Vec::new(), Vec::new());
    for i in 0..n {
        let start = wall_ms();
        set(client, object, slot, json!(i));
        acked.push(wall_ms() - start);
        let check = format!(
            "(() => {{ let last = 0; for (const oid of {oids}) {{ \
               const m = document.querySelector(`.morph[data-oid=\"${{oid}}\"]`); \
               const v = m && m.querySelector('.slots.{section} .slot-row[data-slot=\"{slot}\"] .value'); \
               if (!v || v.textContent !== '{i}') return 0; \
               last = Math.max(last, Number(m.dataset.renderedWall)); }} return last; }})()"
        );
        let rendered = page.until(&check, "the change on every watched morph").await;
        shown.push(rendered.as_f64().expect("a time") - start);
    }
    (percentiles(shown), percentiles(acked))
}

async fn heap_mb(page: &Browser) -> f64 {
    let bytes = page.run("gc(); return performance.memory.usedJSHeapSize").await;
    bytes.as_f64().expect("a size") / 1e6
}

fn main() {
    let quick = std::env::args().all(|a| a != "--bench");
    let (n, objects, transactions) = if quick { (10, 100, 500) } else { (200, 1_000, 10_000) };
    let serving = Serving::start();
    let info = serving.info.clone();
    let mut client = Client::connect(&info, ConnectOptions::default()).expect("connects");
    // Only the morphs the benchmark opens are shown.
    let roots = ok(&mut client, Request::Roots);
    for oid in roots.as_object().expect("roots").values() {
        let object = oid.as_str().expect("#oid").to_owned();
        ok(&mut client, Request::Place { object, x: 0.0, y: 0.0, open: false });
    }
    let genesis = ok(&mut client, Request::Inspect { object: "genesis".into(), at: None })["oid"]
        .as_u64()
        .expect("oid");
    let parent = ok(&mut client, Request::Inspect { object: "genesis".into(), at: None })
        ["parents"][0]
        .as_u64()
        .expect("genesis has a parent");
    let clones: Vec<u64> = (0..49)
        .map(|_| {
            ok(&mut client, Request::Clone { object: "genesis".into(), name: None })["oid"]
                .as_u64()
                .expect("oid")
        })
        .collect();

    println!("UI benchmarks (headless chromium){}", if quick { " — quick mode" } else { "" });
    println!();
    runtime().block_on(async {
        let page = Browser::open(&info.login_url(), "bench").await;
        page.until("document.querySelector('#connection').dataset.state === 'live'", "a live page").await;
        page.run(&format!("window.batos.world.open({genesis})")).await;
        page.until(&format!("document.querySelector('.morph[data-oid=\"{genesis}\"]').dataset.renderedWall"), "genesis").await;
        let empty_heap = heap_mb(&page).await;

        let (one, ack1) = changes(&page, &mut client, "genesis", "benchValue", &[genesis], true, n).await;
        for oid in &clones {
            page.run(&format!("window.batos.world.open({oid})")).await;
        }
        let all: Vec<u64> = std::iter::once(genesis).chain(clones.iter().copied()).collect();
        let fifty = changes(&page, &mut client, "genesis", "benchValue", &[genesis], true, n).await;
        let parent_ref = format!("#{parent}");
        let shared = changes(&page, &mut client, &parent_ref, "benchShared", &all, false, n).await;
        println!("committed change → morph showing it (ms, p50 / p99), beside the change's round trip:");
        println!("  1 morph open, its object changed    {:>7.2} / {:>7.2}   round trip {:>6.2} / {:>6.2}", one.0, one.1, ack1.0, ack1.1);
        println!("  50 morphs open, one object changed  {:>7.2} / {:>7.2}   round trip {:>6.2} / {:>6.2}", fifty.0 .0, fifty.0 .1, fifty.1 .0, fifty.1 .1);
        println!("  50 morphs open, their parent changed {:>6.2} / {:>7.2}   round trip {:>6.2} / {:>6.2}  (all 50 re-rendered)", shared.0 .0, shared.0 .1, shared.1 .0, shared.1 .1);
        println!("  ratio to the round trip (p50): {:.1}× / {:.1}× / {:.1}×", one.0 / ack1.0, fifty.0 .0 / fifty.1 .0, shared.0 .0 / shared.1 .0);

        // Weight: the page with many objects in its (virtualised) list.
        for oid in &clones {
            page.run(&format!("window.batos.world.close(window.batos.world.morphs.get({oid}))")).await;
        }
        // Reachable through a list on genesis (an unnamed clone nothing refers to is
        // garbage, and not listed).
        let made: Vec<Json> = (0..objects)
            .map(|_| json!({ "$object": ok(&mut client, Request::Clone { object: "genesis".into(), name: None })["oid"] }))
            .collect();
        set(&mut client, "genesis", "benchObjects", Json::Array(made));
        page.client.refresh().await.expect("reloads");
        let count = page.until("(t => t.includes(' of ') && t)(document.querySelector('#object-count').textContent)", "the object list").await;
        let rows = page.run("return document.querySelectorAll('#object-list .row').length").await;
        let full_heap = heap_mb(&page).await;
        println!();
        println!("page weight: JS heap {full_heap:.1} MB with {count} listed ({rows} rows in the DOM), beside {empty_heap:.1} MB on a fresh image: {:.2}×", full_heap / empty_heap);

        // A long history: the tab lists every transaction, virtualised.
        for i in 0..transactions {
            set(&mut client, "genesis", "benchHistory", json!(i));
        }
        let start = wall_ms();
        page.run("document.querySelector('#tabs button[data-tab=\"history\"]').click()").await;
        page.until("document.querySelectorAll('#history-list .row').length > 0", "the history").await;
        let shown = wall_ms() - start;
        let heap = heap_mb(&page).await;
        println!("history tab with {transactions}+ transactions: shown in {shown:.0} ms; JS heap {heap:.1} MB");
        page.close().await;
    });
    client.close();
    serving.stop();
}
