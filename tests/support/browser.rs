//! A headless chromium behind its chromedriver (Debian's `chromium` and
//! `chromium-driver`; `scripts/test.sh` installs them), driven by fantoccini: shared by
//! the UI's browser tests and its benchmark. Screenshots land under
//! `$CARGO_TARGET_DIR/ui-screenshots/` (`target/ui-screenshots/` without it).
#![allow(dead_code)] // each user takes its own part

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value as Json};

/// How long a condition in the page may take before the test fails (and screenshots).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A headless chromium on a page of the kernel.
pub struct Browser {
    pub client: Client,
    driver: Child,
    test: &'static str,
    /// chromedriver's and chromium's `TMPDIR` (their profile and scoped folders), removed
    /// after `Drop` has killed them: killed, chromium never removes its own.
    _temp: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and chromium and opens `url`.
    pub async fn open(url: &str, test: &'static str) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // Its own process group, so that the browser it starts goes with it even when a
        // failing test never reaches `close` (see `Drop`).
        let temp = tempfile::tempdir().expect("a folder for the browser's files");
        let mut driver = Command::new("chromedriver")
            .process_group(0)
            .env("TMPDIR", temp.path())
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian's chromium-driver; scripts/setup.sh installs it)");
        // chromedriver says when it listens; the rest of its output is drained.
        let mut lines = BufReader::new(driver.stdout.take().expect("piped")).lines();
        loop {
            let line = lines.next().expect("chromedriver starts").expect("a line");
            if line.contains("started successfully") {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                // Root in a container needs --no-sandbox (chromium's own process
                // sandbox, not the page's iframe sandbox, which stays on).
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1500,1000", "--enable-precise-memory-info",
                         // The benchmark collects garbage before it weighs the page.
                         "--js-flags=--expose-gc"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromium starts under chromedriver");
        client.goto(url).await.expect("the page loads");
        Browser { client, driver, test, _temp: temp }
    }

    /// Waits until `expression` (JavaScript) is truthy and answers its value.
    pub async fn until(&self, expression: &str, what: &str) -> Json {
        self.until_within(expression, what, PATIENCE).await
    }

    /// [`Browser::until`] with its own patience (a synthesis cycle's first build
    /// compiles the guest SDK's dependencies).
    pub async fn until_within(&self, expression: &str, what: &str, patience: Duration) -> Json {
        let started = Instant::now();
        let script = format!("return ({expression});");
        loop {
            let value = self.client.execute(&script, vec![]).await.expect("the script runs");
            let truthy = !matches!(&value, Json::Null | Json::Bool(false))
                && value != json!("")
                && value != json!(0);
            if truthy {
                return value;
            }
            if started.elapsed() > patience {
                self.screenshot("timeout").await;
                panic!("the page never showed {what} ({expression})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the morph of `oid`'s own slot `slot`, once it shows one.
    pub async fn slot_text(&self, oid: u64, slot: &str, what: &str) -> String {
        let js = format!(
            "(document.querySelector('.morph[data-oid=\"{oid}\"] .slots.own .slot-row[data-slot=\"{slot}\"] .value') || {{}}).textContent"
        );
        self.until(&js, what).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn run(&self, script: &str) -> Json {
        self.client.execute(script, vec![]).await.expect("the script runs")
    }

    pub async fn screenshot(&self, name: &str) {
        let dir = screenshots();
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{}-{name}.png", self.test)), png);
        }
    }

    /// Ends the browser session politely, then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Kills chromedriver's whole process group (the browser too).
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

pub fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("ui-screenshots")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}
