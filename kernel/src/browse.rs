//! What a browser needs beyond the command line's requests: every reachable object,
//! where a selector resolves and what the method found there is, the metacognition
//! journal, and where the morphs stand.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use batos::image::json;
use batos::sandbox::plugin;
use batos::synthesis::skills::SKILLS_ROOT;
use batos::{Method, Oid, Runtime, Value};
use batos_protocol::Output;
use serde_json::json;

use crate::{bad_input, Failure, Kernel};

/// Where morph placements live in the image's auxiliary store: outside the transaction
/// history, since dragging a morph changes no object.
const LAYOUT_PREFIX: &str = "ui/morph/";

/// Every object reachable from the roots, breadth first from them (through parents and
/// references in slots, lists and maps).
pub fn objects(rt: &Runtime) -> Result<Output, Failure> {
    let found = rt.view(|cx| {
        let tx = cx.tx();
        let roots = tx.roots()?;
        let names: BTreeMap<Oid, String> = roots.iter().map(|(n, o)| (*o, n.clone())).collect();
        let mut seen: BTreeSet<Oid> = roots.values().copied().collect();
        let mut queue: VecDeque<Oid> = roots.values().copied().collect();
        let mut out = Vec::new();
        while let Some(oid) = queue.pop_front() {
            // An object removed by undo or pack that a slot still names is skipped.
            let Ok(parents) = tx.parents(oid) else { continue };
            let slots = tx.slots(oid)?;
            let mut referenced = parents.clone();
            for value in slots.values() {
                references(value, &mut referenced);
            }
            for r in referenced {
                if seen.insert(r) {
                    queue.push_back(r);
                }
            }
            out.push(json!({
                "oid": oid.0, "name": names.get(&oid), "parents": parents.iter().map(|p| p.0).collect::<Vec<_>>(),
                "slots": slots.len(),
            }));
        }
        Ok(out)
    })?;
    let text = found
        .iter()
        .map(|o| match o["name"].as_str() {
            Some(name) => format!("#{:<6} {name}", o["oid"]),
            None => format!("#{}", o["oid"]),
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Output { text, json: json!(found) })
}

fn references(value: &Value, out: &mut Vec<Oid>) {
    match value {
        Value::Object(oid) => out.push(*oid),
        Value::List(items) => items.iter().for_each(|v| references(v, out)),
        Value::Map(map) => map.values().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// Where `selector` resolves from `object`, and what is found there.
pub fn resolve(kernel: &Kernel, object: &str, selector: &str) -> Result<Output, Failure> {
    let rt = kernel.runtime();
    let receiver = rt.resolve(object)?;
    let walk = rt.view(|cx| batos::runtime::walk(cx.tx(), receiver, selector))?;
    let visited: Vec<u64> = walk.visited.iter().map(|o| o.0).collect();
    let Some((holder, value)) = walk.found else {
        return Ok(Output {
            text: format!(
                "nothing {receiver} delegates to has `{selector}` (searched {})",
                walk.visited.iter().map(Oid::to_string).collect::<Vec<_>>().join(", ")
            ),
            json: json!({ "selector": selector, "visited": visited, "holder": null }),
        });
    };
    let (what, text) = match &value {
        Value::Method(m) => describe_method(kernel, holder, selector, m)?,
        data => (json!({ "kind": "data", "value": json::to_json(data) }), "data".to_owned()),
    };
    Ok(Output {
        text: format!("`{selector}` resolves on {holder}: {text}"),
        json: json!({ "selector": selector, "visited": visited, "holder": holder.0, "found": what }),
    })
}

/// What a method is: a primitive, or a component with its grants, source, a fresh
/// audit verdict, and the cycle (or plugin) that installed it.
fn describe_method(
    kernel: &Kernel,
    holder: Oid,
    selector: &str,
    method: &Method,
) -> Result<(serde_json::Value, String), Failure> {
    let rt = kernel.runtime();
    match method {
        Method::Native { primitive } => Ok((
            json!({ "kind": "native", "primitive": primitive }),
            format!("native primitive `{primitive}`"),
        )),
        Method::Unconfirmed { method, reason } => {
            let (mut what, text) = describe_method(kernel, holder, selector, method)?;
            what["unconfirmed"] = json!(reason);
            Ok((what, format!("{text} (unconfirmed: {reason})")))
        }
        Method::Component { component, grants, deadline_ms } => {
            let bytes = rt.image().blobs().read(component)?;
            let audit = match batos::sandbox::gate::parse_grants(grants) {
                Ok(parsed) => {
                    match kernel.sandbox().audit(&bytes, &parsed, &format!("`{selector}`")) {
                        Ok(()) => json!({ "passed": true }),
                        Err(e) => json!({ "passed": false, "reason": e.to_string() }),
                    }
                }
                Err(reason) => json!({ "passed": false, "reason": reason }),
            };
            let mut what = json!({
                "kind": "component", "component": component.hash.to_hex(), "size": component.size,
                "grants": grants, "deadline_ms": deadline_ms, "audit": audit,
            });
            let skill = rt.view(|cx| {
                let Some(reg) = cx.tx().root(SKILLS_ROOT)? else { return Ok(None) };
                cx.tx().slot(reg, &format!("{selector}@{holder}"))
            })?;
            let made_here = match &skill {
                Some(Value::Map(m)) => {
                    matches!(m.get("component"), Some(Value::Blob(b)) if b == component)
                }
                _ => false,
            };
            if let (true, Some(Value::Map(m))) = (made_here, skill) {
                for key in ["cycle", "source", "model", "description", "signature"] {
                    if let Some(v) = m.get(key) {
                        what[key] = json::to_json(v);
                    }
                }
                what["origin"] = json!("synthesised");
            } else if let Some(p) =
                plugin::list(rt)?.into_iter().find(|p| p.component == *component)
            {
                what["origin"] = json!("plugin");
                what["plugin"] = json!(p.name);
                what["description"] = json!(p.description);
                if let Some(source) = p.source {
                    let text = rt.image().blobs().read(&source)?;
                    what["source"] = json!(String::from_utf8_lossy(&text));
                }
            }
            let text = format!(
                "component {} with {}",
                &component.hash.to_hex()[..12],
                if grants.is_empty() { "no grants".to_owned() } else { grants.join(", ") }
            );
            Ok((what, text))
        }
    }
}

/// The journal's newest `limit` entries, oldest first.
pub fn journal(rt: &Runtime, limit: usize) -> Result<Output, Failure> {
    let all = batos::synthesis::journal::Journal::new(rt.image().path()).read();
    let newest = all[all.len().saturating_sub(limit)..].to_vec();
    let text = if newest.is_empty() {
        "the journal is empty: no cycle has run yet".to_owned()
    } else {
        newest.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
    };
    Ok(Output { text, json: json!(newest) })
}

/// Every morph's placement, by `#oid`.
pub fn layout(rt: &Runtime) -> Result<Output, Failure> {
    let mut placed = serde_json::Map::new();
    for (key, bytes) in rt.image().aux_scan(LAYOUT_PREFIX)? {
        // A placement this version cannot read is dropped, not fatal: the page
        // places that morph afresh.
        if let (Some(oid), Ok(place)) =
            (key.strip_prefix(LAYOUT_PREFIX), serde_json::from_slice::<serde_json::Value>(&bytes))
        {
            placed.insert(format!("#{oid}"), place);
        }
    }
    let text = placed
        .iter()
        .map(|(oid, p)| {
            format!(
                "{oid:<8} x {} y {} {}",
                p["x"],
                p["y"],
                if p["open"] == true { "open" } else { "closed" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Output { text, json: serde_json::Value::Object(placed) })
}

/// Places (or closes) the morph of `object`.
pub fn place(rt: &Runtime, object: &str, x: f64, y: f64, open: bool) -> Result<Output, Failure> {
    if !x.is_finite() || !y.is_finite() {
        return Err(bad_input(format!(
            "a morph's position must be finite numbers, not ({x}, {y})"
        )));
    }
    let oid = rt.resolve(object)?;
    let place = json!({ "x": x, "y": y, "open": open });
    rt.image().aux_put(&format!("{LAYOUT_PREFIX}{}", oid.0), place.to_string().as_bytes())?;
    Ok(Output {
        text: format!("{oid} at ({x}, {y})"),
        json: json!({ "oid": oid.0, "place": place }),
    })
}
