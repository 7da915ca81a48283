//! # batos-guest-sdk
//!
//! Write a batos capability in Rust. A capability is an ordinary function with typed
//! parameters and answer; `#[capability]` exports it, converting the message's
//! arguments and the answer (see [`FromValue`] and [`IntoValue`] for the types):
//!
//! ```no_run
//! use batos_guest_sdk::prelude::*;
//!
//! #[capability]
//! fn mean(values: &[f64]) -> Result<f64, Error> {
//!     if values.is_empty() {
//!         return Err("the mean of nothing is undefined".into());
//!     }
//!     Ok(values.iter().sum::<f64>() / values.len() as f64)
//! }
//! ```
//!
//! A first parameter `&Object` is the receiver (slots and sends: [`ObjectExt`],
//! [`helpers`]); errors work with `?`; a panic's message reaches the host (and, in a
//! synthesis cycle, the mind) instead of a bare trap; [`testing`] runs the function in
//! a plain `cargo test`. The untyped form, one `fn(Call) -> Result<Value, Error>`
//! exported with [`raw_capability!`], stays for capabilities that want the raw values.
//!
//! Build it as a `cdylib` for `wasm32-unknown-unknown`; `batos plugin add DIR` does that
//! and turns the core module into a component of the `batos:uvm` world. We target
//! core wasm rather than `wasm32-wasip2` on purpose: a `wasip2` build imports WASI
//! interfaces (streams, environment, exit) that the host's audit would have to allow;
//! a core module plus componentization imports exactly what the capability calls.
//!
//! The types underneath are generated from `wit/uvm.wit` by wit-bindgen; the
//! [`Value`] and [`Call`] wrappers keep plugins free of the flat node encoding.

mod convert;
pub mod helpers;
pub mod testing;
mod value;

pub use batos_guest_sdk_macros::capability;
pub use convert::{FromValue, IntoError, IntoValue, MapKey};
pub use value::Value;

/// The bindings generated from `wit/uvm.wit` (the `capability` world).
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "capability",
        pub_export_macro: true,
        export_macro_name: "export_capability",
        default_bindings_module: "::batos_guest_sdk::bindings",
    });
}

use bindings::batos::uvm::types as wit;
pub use bindings::batos::uvm::types::{BlobRef, ErrorKind, MethodRef, Object};

/// The structured error a capability returns.
pub type Error = wit::Error;

/// Makes an [`Error`].
pub fn error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error { kind, message: message.into() }
}

/// Slot access and sends on an object handle, with the SDK's [`Value`].
pub trait ObjectExt {
    /// Reads a slot, own or inherited.
    fn get(&self, name: &str) -> Result<Value, Error>;
    /// Writes an own slot (the receiver, or a clone made in this call).
    fn set(&self, name: &str, value: &Value) -> Result<(), Error>;
    /// Sends a message.
    fn send_message(&self, selector: &str, args: &[Value]) -> Result<Value, Error>;
}

impl ObjectExt for Object {
    fn get(&self, name: &str) -> Result<Value, Error> {
        self.slot(name).map(Value::from_wit)
    }

    fn set(&self, name: &str, value: &Value) -> Result<(), Error> {
        self.set_slot(name, &value.to_param())
    }

    fn send_message(&self, selector: &str, args: &[Value]) -> Result<Value, Error> {
        let params: Vec<wit::ValueParam<'_>> = args.iter().map(Value::to_param).collect();
        self.send(selector, &params).map(Value::from_wit)
    }
}

/// One message, as the capability receives it.
pub struct Call {
    /// The object the message was sent to.
    pub receiver: Object,
    /// The arguments.
    pub args: Vec<Value>,
}

impl Call {
    /// Argument `i` (0-based).
    pub fn arg(&self, i: usize) -> Result<&Value, Error> {
        self.args.get(i).ok_or_else(|| {
            error(
                ErrorKind::BadArguments,
                format!("argument {} is missing ({} given)", i + 1, self.args.len()),
            )
        })
    }

    fn wrong(&self, i: usize, expected: &str) -> Error {
        let got = self.args.get(i).map_or("nothing", Value::type_name);
        error(ErrorKind::BadArguments, format!("argument {} must be {expected}, got {got}", i + 1))
    }

    /// Argument `i` as text.
    pub fn text(&self, i: usize) -> Result<&str, Error> {
        match self.arg(i)? {
            Value::Text(s) => Ok(s),
            _ => Err(self.wrong(i, "text")),
        }
    }

    /// Argument `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64, Error> {
        match self.arg(i)? {
            Value::Int(n) => Ok(*n),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    /// Argument `i` as an object handle.
    pub fn object(&self, i: usize) -> Result<&Object, Error> {
        match self.arg(i)? {
            Value::Object(o) => Ok(o),
            _ => Err(self.wrong(i, "an object")),
        }
    }
}

/// Writes a line to the host's log.
pub fn log(message: &str) {
    bindings::batos::uvm::log::log(bindings::batos::uvm::log::Level::Info, message);
}

/// Wall-clock time as (seconds, nanoseconds) since the Unix epoch. Needs the `clock`
/// grant in the plugin's manifest; without it the audit refuses the plugin.
pub fn now() -> (u64, u32) {
    let t = bindings::batos::uvm::clock::now();
    (t.seconds, t.nanoseconds)
}

/// Eight random bytes from the host, as a `u64`. Needs the `random` grant.
pub fn random_u64() -> u64 {
    bindings::batos::uvm::random::next_u64()
}

/// Asks the image's mind (`pLLM`, with the backend and model its slots name) to answer
/// `prompt`. Needs the `mind` grant. The call is part of the caller's transaction and
/// takes as long as the model does: seconds, not microseconds.
pub fn complete(prompt: &str) -> Result<String, Error> {
    bindings::batos::uvm::mind::complete(prompt)
}

/// One passage the memory found: its text, the document it came from, and its fused
/// rank score (higher is better).
pub use bindings::batos::uvm::memory::Passage;

/// Searches the image's memory (the passages `batos ingest` made of documents) by words
/// and by meaning, best first, at most `limit`. Needs the `memory` grant.
pub fn search(query: &str, limit: u32) -> Result<Vec<Passage>, Error> {
    bindings::batos::uvm::memory::search(query, limit)
}

/// The prefix of the error line a panic writes to the host's log; the host reports the
/// rest as the reason of the trap that follows.
pub const PANIC_PREFIX: &str = "panicked: ";

/// Sends a panic's message and place to the host's log before the module traps, so
/// the failure says what went wrong rather than "unreachable".
fn report_panics() {
    #[cfg(target_arch = "wasm32")]
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        let place = info.location().map(|l| format!(" (line {})", l.line())).unwrap_or_default();
        bindings::batos::uvm::log::log(
            bindings::batos::uvm::log::Level::Error,
            &format!("{PANIC_PREFIX}{message}{place}"),
        );
    }));
}

#[doc(hidden)]
pub fn __invoke(
    receiver: Object,
    args: Vec<wit::Value>,
    f: fn(Call) -> Result<Value, Error>,
) -> Result<wit::Value, Error> {
    report_panics();
    let call = Call { receiver, args: args.into_iter().map(Value::from_wit).collect() };
    f(call).map(Value::into_wit)
}

#[doc(hidden)]
pub fn __invoke_typed(
    receiver: Object,
    args: Vec<wit::Value>,
    f: testing::Entry,
) -> Result<wit::Value, Error> {
    report_panics();
    f(Some(&receiver), args.into_iter().map(Value::from_wit).collect()).map(Value::into_wit)
}

/// `args` when there are `n` of them; else the error naming the capability.
#[doc(hidden)]
pub fn __arity(args: Vec<Value>, n: usize, name: &str) -> Result<std::vec::IntoIter<Value>, Error> {
    if args.len() == n {
        Ok(args.into_iter())
    } else {
        Err(error(
            ErrorKind::BadArguments,
            format!("`{name}` takes {n} argument(s), {} given", args.len()),
        ))
    }
}

/// The next argument (number `index`, 0-based) as `T`.
#[doc(hidden)]
pub fn __argument<T: FromValue>(
    args: &mut std::vec::IntoIter<Value>,
    index: usize,
) -> Result<T, Error> {
    let value = args.next().unwrap_or(Value::Nil);
    T::from_value(value).map_err(|expected| {
        error(ErrorKind::BadArguments, format!("argument {} must be {expected}", index + 1))
    })
}

/// The receiver, which exists in every call the host makes and in none a test makes.
#[doc(hidden)]
pub fn __receiver<'a>(receiver: Option<&'a Object>, name: &str) -> Result<&'a Object, Error> {
    receiver.ok_or_else(|| {
        error(
            ErrorKind::BadArguments,
            format!("`{name}` uses its receiver, and this call has none"),
        )
    })
}

/// Exports a typed entry (what `#[capability]` generates) as the capability's `invoke`.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_typed {
    ($entry:path) => {
        #[cfg(target_arch = "wasm32")]
        struct __BatosCapability;
        #[cfg(target_arch = "wasm32")]
        impl $crate::bindings::Guest for __BatosCapability {
            fn invoke(
                receiver: $crate::Object,
                args: ::std::vec::Vec<$crate::bindings::batos::uvm::types::Value>,
            ) -> ::std::result::Result<$crate::bindings::batos::uvm::types::Value, $crate::Error> {
                $crate::__invoke_typed(receiver, args, $entry)
            }
        }
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export_capability!(__BatosCapability with_types_in $crate::bindings);
    };
}

/// Exports `f: fn(Call) -> Result<Value, Error>` as the capability's `invoke`: the untyped
/// form, for a capability that wants the raw values (`#[capability]` is the usual one).
#[macro_export]
macro_rules! raw_capability {
    ($f:path) => {
        struct __BatosCapability;
        impl $crate::bindings::Guest for __BatosCapability {
            fn invoke(
                receiver: $crate::Object,
                args: ::std::vec::Vec<$crate::bindings::batos::uvm::types::Value>,
            ) -> ::std::result::Result<$crate::bindings::batos::uvm::types::Value, $crate::Error> {
                $crate::__invoke(receiver, args, $f)
            }
        }
        $crate::bindings::export_capability!(__BatosCapability with_types_in $crate::bindings);
    };
}

/// What a capability usually needs.
pub mod prelude {
    pub use crate::{
        capability, error, log, Call, Error, ErrorKind, FromValue, IntoValue, Object, ObjectExt,
        Value,
    };
}
