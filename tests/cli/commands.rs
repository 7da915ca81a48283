//! The `batos` command line, run as a user would run it: each test runs on an image
//! the commands open themselves, and again on one a `batos serve` kernel holds (the
//! commands are its clients), except the two about opening an image.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value as Json;

fn batos(image: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_batos"))
        .arg("--image")
        .arg(image)
        .args(args)
        .env_remove("BATOS_IMAGE")
        .output()
        .expect("batos runs")
}

pub fn ok_json(image: &Path, args: &[&str]) -> Json {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = batos(image, &all);
    assert!(
        out.status.success(),
        "batos {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

pub fn err_json(image: &Path, args: &[&str]) -> Json {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = batos(image, &all);
    assert!(!out.status.success(), "batos {args:?} should fail");
    assert!(out.stdout.is_empty(), "errors go to stderr only");
    serde_json::from_slice(&out.stderr).expect("stderr is JSON")
}

/// How the commands reach the image.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Each command opens the image itself.
    Direct,
    /// A kernel (`batos serve`) holds the image and each command is its client.
    Served,
}

/// Runs `test` on a fresh temporary folder (the image is its `image`, a models folder
/// with nothing in it its `no-models`) once per mode: the same commands must answer the
/// same either way.
fn in_each_mode(test: impl Fn(&Path)) {
    for mode in [Mode::Direct, Mode::Served] {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("image");
        let models = dir.path().join("no-models");
        let _kernel = (mode == Mode::Served)
            .then(|| super::bridge::Kernel::start_with(&image, &[("BATOS_MODELS", &models)]));
        test(dir.path());
    }
}

#[test]
fn a_session_from_the_command_line() {
    in_each_mode(a_session);
}

fn a_session(dir: &Path) {
    let image = dir.join("image");

    let awake = ok_json(&image, &["awaken"]);
    assert_eq!(awake["created"], true);
    assert_eq!(awake["roots"]["genesis"], 3);
    assert_eq!(ok_json(&image, &["awaken"])["created"], false);

    let clone = ok_json(&image, &["clone", "genesis", "--name", "acct"]);
    let oid = clone["oid"].as_u64().expect("an oid");
    let sent = ok_json(&image, &["send", "acct", "setSlot:value:", "\"balance\"", "-5"]);
    assert_eq!(sent["result"]["$object"], oid);
    assert_eq!(ok_json(&image, &["send", &format!("#{oid}"), "balance"])["result"], -5);

    let set = ok_json(&image, &["set", "acct", "owner", r#"{"$object": "genesis"}"#]);
    assert_eq!(set["result"], serde_json::json!({ "$object": 3 }));

    let inspect = ok_json(&image, &["inspect", "acct"]);
    assert_eq!(inspect["parents"], serde_json::json!([1, 2]));
    assert_eq!(inspect["slots"]["balance"], -5);

    let history = ok_json(&image, &["history", "--limit", "2"]);
    let newest = history[0]["tx"].as_u64().expect("tx");
    assert!(history[0]["description"].as_str().expect("text").starts_with("set "));

    let undo = ok_json(&image, &["undo", &newest.to_string()]);
    assert_eq!(undo["undone"], newest);
    let inspect = ok_json(&image, &["inspect", "acct"]);
    assert!(inspect["slots"].get("owner").is_none());
    let then = ok_json(&image, &["inspect", "acct", "--at", &newest.to_string()]);
    assert_eq!(then["slots"]["owner"], serde_json::json!({ "$object": 3 }));

    let pack = ok_json(&image, &["pack"]);
    assert_eq!(pack["objects"], 0);

    // Human output names things too.
    let out = batos(&image, &["inspect", "genesis"]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.starts_with("genesis #3\nparents: #1 (traits), #2 (pLLM)"), "{text}");
}

#[test]
fn failures_exit_non_zero_with_a_typed_error_and_change_nothing() {
    in_each_mode(|dir| failures(&dir.join("image")));
}

fn failures(image: &Path) {
    let image = image.to_path_buf();
    ok_json(&image, &["awaken"]);
    let cases: [(&[&str], &str); 7] = [
        (&["send", "--no-synthesis", "genesis", "frobnicate"], "does_not_understand"),
        (&["send", "genesis", "9lives"], "does_not_understand"),
        (&["send", "nobody", "clone"], "not_found"),
        (&["send", "#99", "clone"], "not_found"),
        (&["send", "genesis", "setSlot:value:", "not json", "1"], "bad_input"),
        (&["set", "genesis", "", "1"], "bad_input"),
        (&["undo", "77"], "not_found"),
    ];
    for (args, kind) in cases {
        let err = err_json(&image, args);
        assert_eq!(err["error"]["kind"], kind, "{args:?}: {err}");
        assert!(!err["error"]["message"].as_str().unwrap_or_default().is_empty());
    }
    let history = ok_json(&image, &["history"]);
    assert_eq!(history.as_array().map(Vec::len), Some(1), "only the awakening: {history}");

    let out = batos(&image, &["send", "--no-synthesis", "genesis", "frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: #3 does not understand `frobnicate`"), "{stderr}");
}

#[test]
fn a_locked_image_names_its_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    let _held = batos::Runtime::open(&image).expect("this process holds the image");
    let err = err_json(&image, &["awaken"]);
    assert_eq!(err["error"]["kind"], "image_locked");
    let message = err["error"]["message"].as_str().expect("message");
    assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
}

#[test]
fn a_foreign_folder_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("thesis.tex"), "precious").expect("write");
    let err = err_json(dir.path(), &["awaken"]);
    assert_eq!(err["error"]["kind"], "not_an_image");
    assert_eq!(std::fs::read_to_string(dir.path().join("thesis.tex")).expect("intact"), "precious");
}

fn repo_path(relative: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative).display().to_string()
}

#[test]
fn reachable_objects_where_selectors_resolve_and_the_journal() {
    in_each_mode(|dir| browsing(&dir.join("image")));
}

fn browsing(image: &Path) {
    let acct =
        ok_json(image, &["clone", "genesis", "--name", "acct"])["oid"].as_u64().expect("oid");
    ok_json(image, &["set", "acct", "balance", "5"]);
    let orphan = ok_json(image, &["clone", "genesis"])["oid"].as_u64().expect("oid");
    let objects = ok_json(image, &["objects"]);
    let objects = objects.as_array().expect("a list");
    let oids: Vec<u64> = objects.iter().filter_map(|o| o["oid"].as_u64()).collect();
    assert!(oids.contains(&acct) && oids.contains(&3), "{oids:?}");
    assert!(!oids.contains(&orphan), "an object nothing reaches is not listed");
    let listed = objects.iter().find(|o| o["oid"] == acct).expect("acct is listed");
    assert_eq!(listed["name"], "acct");
    assert_eq!(listed["parents"], serde_json::json!([1, 2]));

    let data = ok_json(image, &["resolve", "acct", "balance"]);
    assert_eq!(data["holder"], acct);
    assert_eq!(data["found"], serde_json::json!({ "kind": "data", "value": 5 }));
    let native = ok_json(image, &["resolve", "acct", "clone"]);
    assert_eq!(native["found"]["kind"], "native", "{native}");
    assert_eq!(native["visited"][0], acct, "the walk starts at the receiver");
    assert_eq!(native["visited"].as_array().and_then(|v| v.last()), Some(&native["holder"]));
    let nothing = ok_json(image, &["resolve", "acct", "fly"]);
    assert!(nothing["holder"].is_null(), "{nothing}");
    assert!(nothing["visited"].as_array().is_some_and(|v| v.len() >= 3), "{nothing}");
    assert_eq!(err_json(image, &["resolve", "nobody", "fly"])["error"]["kind"], "not_found");

    assert_eq!(ok_json(image, &["journal"]), serde_json::json!([]), "no cycle has run");
}

#[test]
fn plugins_from_the_command_line() {
    in_each_mode(|dir| plugins(&dir.join("image")));
}

fn plugins(image: &Path) {
    let image = image.to_path_buf();
    // The three kinds: WAT, Rust, and Rust with the clock grant.
    for (path, selector) in [
        ("plugins/double.wat", "double:"),
        ("plugins/greet", "greet:"),
        ("plugins/report_time", "reportTime"),
        ("plugins/counter", "increment"),
        ("plugins/shout", "shout:"),
    ] {
        let added = ok_json(&image, &["plugin", "add", &repo_path(path)]);
        assert_eq!(added["selector"], selector, "{path}");
    }
    assert_eq!(ok_json(&image, &["send", "genesis", "double:", "21"])["result"], 42);
    assert_eq!(ok_json(&image, &["send", "genesis", "greet:", "\"Ada\""])["result"], "Hello, Ada!");
    assert!(
        ok_json(&image, &["send", "genesis", "reportTime"])["result"].as_i64().expect("seconds")
            > 1_700_000_000
    );
    assert_eq!(ok_json(&image, &["send", "genesis", "shout:", "\"bob\""])["result"], "HELLO, BOB!");
    assert_eq!(ok_json(&image, &["send", "genesis", "increment"])["result"], 1);
    assert_eq!(
        ok_json(&image, &["send", "genesis", "increment"])["result"],
        2,
        "the count persists between processes"
    );

    // What a method is: a component, its grants, a fresh audit and its plugin's source.
    let timed = ok_json(&image, &["resolve", "genesis", "reportTime"]);
    assert_eq!(timed["found"]["kind"], "component", "{timed}");
    assert_eq!(timed["found"]["grants"], serde_json::json!(["clock"]));
    assert_eq!(timed["found"]["audit"]["passed"], true, "{timed}");
    assert_eq!(timed["found"]["origin"], "plugin");
    assert!(timed["found"]["source"].as_str().is_some_and(|s| s.contains("fn ")), "{timed}");

    let list = ok_json(&image, &["plugin", "list"]);
    let names: Vec<&str> =
        list.as_array().expect("list").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, vec!["counter", "double", "greet", "report_time", "shout"]);
    let report_time =
        list.as_array().expect("list").iter().find(|p| p["name"] == "report_time").expect("entry");
    assert_eq!(report_time["grants"], serde_json::json!(["clock"]));

    let err = err_json(&image, &["send", "genesis", "double:", "\"x\""]);
    assert_eq!(err["error"]["kind"], "trapped", "{err}");
    let stats = ok_json(&image, &["plugin", "stats"]);
    let double =
        stats.as_array().expect("stats").iter().find(|s| s["name"] == "double").expect("double");
    assert_eq!(double["calls"], 2, "stats persist across processes: {stats}");
    assert_eq!(double["failures"]["trapped"], 1);

    ok_json(&image, &["plugin", "remove", "double"]);
    assert_eq!(
        err_json(&image, &["send", "--no-synthesis", "genesis", "double:", "2"])["error"]["kind"],
        "does_not_understand"
    );
    let err = err_json(&image, &["plugin", "add", &repo_path("plugins/Cargo.toml")]);
    assert_eq!(err["error"]["kind"], "bad_manifest", "{err}");
}

/// Every error kind a script can meet, with `what` for `not_found`: stable names,
/// pinned here.
#[test]
fn error_kinds_name_what_happened() {
    in_each_mode(error_kinds);
}

fn error_kinds(dir: &Path) {
    let image = dir.join("image");
    let models = dir.join("no-models");
    ok_json(&image, &["awaken"]);
    let files = dir.join("files");
    std::fs::create_dir(&files).expect("mkdir");
    let plugin = |name: &str, manifest: &str, wat: &str| -> String {
        std::fs::write(files.join(format!("{name}.toml")), format!("selector = \"{name}\"\ntarget = \"genesis\"\ndescription = \"fixture\"\n{manifest}")).expect("toml");
        let path = files.join(format!("{name}.wat"));
        std::fs::write(&path, wat).expect("wat");
        path.display().to_string()
    };
    // Writes slot `x` of the object it is handed, answering the host's verdict.
    let steal = plugin(
        "steal:",
        "",
        r#"
      (data (i32.const 512) "x")
      (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
        (local $node i32) (local $value i32) (local $r i32)
        (local.set $node (call $arg_node (local.get $args) (local.get $nargs) (i32.const 0)))
        (local.set $value (call $new_node (i32.const 2)))
        (local.set $r (call $alloc (i32.const 16) (i32.const 4)))
        (call $object.set-slot (i32.load offset=8 (local.get $node)) (i32.const 512) (i32.const 1) (local.get $value) (i32.const 1) (local.get $r))
        (if (i32.ne (i32.load8_u (local.get $r)) (i32.const 0)) (then (return (local.get $r))))
        (call $ok_nil))
    "#,
    );
    let spin = plugin(
        "spin",
        "deadline_ms = 50\n",
        "(func $invoke (param i32 i32 i32) (result i32) (loop $l (br $l)) unreachable)",
    );
    let broken = plugin("broken", "", "(func $invoke (param");
    ok_json(&image, &["plugin", "add", &steal]);
    ok_json(&image, &["plugin", "add", &spin]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();

    let kind_of = |args: &[&str]| -> (String, Option<String>) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = Command::new(env!("CARGO_BIN_EXE_batos"))
            .arg("--image")
            .arg(&image)
            .args(&all)
            .env("BATOS_MODELS", &models)
            .output()
            .expect("batos runs");
        assert!(!out.status.success(), "{args:?} should fail");
        let err: Json = serde_json::from_slice(&out.stderr).unwrap_or_else(|_| {
            panic!("{args:?}: stderr is JSON: {}", String::from_utf8_lossy(&out.stderr))
        });
        (
            err["error"]["kind"].as_str().expect("kind").to_owned(),
            err["error"]["what"].as_str().map(str::to_owned),
        )
    };
    let cases: Vec<(Vec<String>, &str, Option<&str>)> = vec![
        (vec!["send".into(), "#99".into(), "clone".into()], "not_found", Some("object")),
        (vec!["inspect".into(), "nobody".into()], "not_found", Some("root")),
        (vec!["undo".into(), "77".into()], "not_found", Some("transaction")),
        (vec!["plugin".into(), "remove".into(), "nope".into()], "not_found", Some("plugin")),
        (vec!["cycle".into(), "c99".into()], "not_found", Some("cycle")),
        (vec!["model".into(), "pull".into(), "no-such-model".into()], "not_found", Some("model")),
        (vec!["send".into(), "#x1".into(), "clone".into()], "bad_input", None),
        (vec!["set".into(), "genesis".into(), "".into(), "1".into()], "bad_input", None),
        (
            vec![
                "send".into(),
                "genesis".into(),
                "steal:".into(),
                r#"{"$object": "traits"}"#.into(),
            ],
            "not_permitted",
            None,
        ),
        (vec!["send".into(), "genesis".into(), "spin".into()], "limit", None),
        (
            vec!["send".into(), "--no-synthesis".into(), "genesis".into(), "frobnicate".into()],
            "does_not_understand",
            None,
        ),
        (vec!["plugin".into(), "add".into(), broken.clone()], "build_failed", None),
    ];
    for (args, kind, what) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(kind_of(&args), ((*kind).to_owned(), what.map(str::to_owned)), "{args:?}");
    }
    // The mind: a model that is not pulled, then a server that is not there.
    ok_json(&image, &["set", "pLLM", "model", "\"absent-model\""]);
    assert_eq!(
        kind_of(&["send", "pLLM", "infer", "\"hi\""]),
        ("not_found".to_owned(), Some("model".to_owned()))
    );
    ok_json(&image, &["set", "pLLM", "backend", "\"openai\""]);
    ok_json(&image, &["set", "pLLM", "baseUrl", &format!("\"http://127.0.0.1:{closed}/v1\"")]);
    assert_eq!(
        kind_of(&["send", "pLLM", "infer", "\"hi\""]),
        ("mind_unavailable".to_owned(), None)
    );
    assert_eq!(
        ok_json(&image, &["inspect", "traits"])["slots"].get("x"),
        None,
        "the refused write left traits alone"
    );
}
