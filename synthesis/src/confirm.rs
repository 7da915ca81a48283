//! An unconfirmed method meets the caller's examples: a method installed with no
//! example from the caller (see `Method::Unconfirmed`) stays unconfirmed until a send
//! that gives examples arrives. If it meets them all, the plain method replaces the
//! wrapper and its skill record says `confirmed`; if not, it was wrong, and it is
//! removed, so that the send synthesises the method anew with the examples.

use crate::error::Result;
use crate::image::{Method, Value};
use crate::request::Request;
use crate::runtime::Runtime;
use crate::skills::SKILLS_ROOT;

/// Confirms or removes the receiver's own unconfirmed method for the request's
/// selector, by the request's examples. Anything else is left as it is.
pub(crate) fn confirm_or_remove(rt: &Runtime, request: &Request) -> Result<()> {
    let (receiver, selector) = (request.receiver, request.selector.as_str());
    let own = rt.view(|cx| match cx.tx().slot(receiver, selector)? {
        Some(Value::Method(Method::Unconfirmed { method, .. })) => Ok(Some(*method)),
        _ => Ok(None),
    })?;
    let Some(method) = own else { return Ok(()) };
    // The examples run on a clone, in a transaction that is rolled back.
    let meets = rt.view(|cx| {
        let clone = cx.clone_object(receiver)?;
        for example in &request.examples {
            match cx.send(clone, selector, &example.args) {
                Ok(got) if got == example.expected => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    })?;
    rt.transact(
        &format!(
            "{} unconfirmed {selector} on {receiver} by the caller's example",
            if meets { "confirm" } else { "remove" }
        ),
        |cx| {
            let tx = cx.tx_mut("confirm a synthesised method")?;
            if meets {
                tx.set_slot(receiver, selector, &Value::Method(method.clone()))?;
            } else {
                tx.remove_slot(receiver, selector)?;
            }
            if let Some(skills) = tx.root(SKILLS_ROOT)? {
                let key = format!("{selector}@{receiver}");
                if let Some(Value::Map(mut entry)) = tx.slot(skills, &key)? {
                    if meets {
                        entry.insert("confirmed".into(), Value::Bool(true));
                        tx.set_slot(skills, &key, &Value::Map(entry))?;
                    } else {
                        tx.remove_slot(skills, &key)?;
                    }
                }
            }
            Ok(())
        },
    )?;
    Ok(())
}
