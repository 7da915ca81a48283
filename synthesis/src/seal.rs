//! Sealing a candidate before it is built: the mind's code is compiled by the host's
//! cargo with the host's privileges, so nothing in it may read the host at compile
//! time or reach past the component boundary.
//!
//! The candidate is parsed with a real Rust parser (`syn`) and refused, with a reason
//! that goes back to the mind and into the cycle, when it holds:
//!
//! * the `include!`, `include_str!`, `include_bytes!` family, `env!`, `option_env!`:
//!   they put host files and environment variables into the component;
//! * `asm!`, `global_asm!`, `naked_asm!`: code the audit cannot reason about;
//! * `#[path]`: a module read from any host file;
//! * inner attributes (`#![...]`): they change how the whole crate is compiled;
//! * `extern crate` and `extern` blocks, `#[link]`, `#[link_name]`, `#[link_section]`,
//!   `#[no_mangle]`, `#[export_name]`, `#[used]`: linking and symbols are the host's;
//! * macro definitions (`macro_rules!`, `macro`): a macro can expand to any of the
//!   above from pieces that look harmless, and a candidate is one function that needs
//!   none.
//!
//! The forbidden names are looked for in every token, inside macro calls and
//! attributes too, so `m!(include_str)` handed to a macro is refused like a direct
//! call. What passes is still built sealed (see `sandbox::build::build_crate`) and
//! audited before it runs.

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// Macro names a candidate may not mention anywhere.
const FORBIDDEN_MACROS: [&str; 9] = [
    "include",
    "include_str",
    "include_bytes",
    "env",
    "option_env",
    "asm",
    "global_asm",
    "naked_asm",
    "concat_idents",
];

/// Attributes a candidate may not carry (`unsafe(...)` wraps the symbol attributes in
/// edition 2024).
const FORBIDDEN_ATTRIBUTES: [&str; 9] = [
    "path",
    "link",
    "link_name",
    "link_section",
    "no_mangle",
    "export_name",
    "used",
    "unsafe",
    "no_builtins",
];

/// Why a candidate was refused before building; the text is written for the mind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a candidate's source (the items the mind wrote); `Ok` when it may be built.
pub fn check(code: &str) -> Result<(), Refusal> {
    let file = syn::parse_file(code).map_err(|e| {
        let at = e.span().start();
        Refusal(format!(
            "It is not valid Rust (line {}, column {}): {e}. Write plain Rust items.",
            at.line,
            at.column + 1
        ))
    })?;
    if let Some(attr) = file.attrs.first() {
        return Err(Refusal(format!("It uses the inner attribute `{}`, which is not allowed: inner attributes change how the whole crate is compiled.", shown(attr))));
    }
    let mut visitor = Sealer { refusal: None };
    visitor.visit_file(&file);
    if let Some(refusal) = visitor.refusal {
        return Err(refusal);
    }
    let tokens: TokenStream = code
        .parse()
        .map_err(|e| Refusal(format!("It is not valid Rust: {e}. Write plain Rust items.")))?;
    scan(tokens)
}

fn shown(attr: &syn::Attribute) -> String {
    let path =
        attr.path().segments.iter().map(|s| s.ident.to_string()).collect::<Vec<_>>().join("::");
    match attr.style {
        syn::AttrStyle::Inner(_) => format!("#![{path}]"),
        syn::AttrStyle::Outer => format!("#[{path}]"),
    }
}

/// Every identifier, inside groups too: macro arguments and bodies are token trees
/// that the syntax tree does not open.
fn scan(tokens: TokenStream) -> Result<(), Refusal> {
    let mut previous_was_pound = false;
    for tree in tokens {
        match tree {
            TokenTree::Ident(ident) => {
                let name = ident.to_string();
                let name = name.strip_prefix("r#").unwrap_or(&name);
                if FORBIDDEN_MACROS.contains(&name) {
                    return Err(Refusal(format!(
                        "It mentions `{name}`, which is not allowed: `{name}!` would read the host while compiling. Compute everything from the arguments."
                    )));
                }
                if name == "macro_rules" {
                    return Err(Refusal(
                        "It defines a macro, which is not allowed: write plain functions.".into(),
                    ));
                }
                previous_was_pound = false;
            }
            TokenTree::Punct(p) => {
                if previous_was_pound && p.as_char() == '!' {
                    return Err(Refusal(
                        "It uses an inner attribute (`#![...]`), which is not allowed.".into(),
                    ));
                }
                previous_was_pound = p.as_char() == '#';
            }
            TokenTree::Group(group) => {
                scan(group.stream())?;
                previous_was_pound = false;
            }
            TokenTree::Literal(_) => previous_was_pound = false,
        }
    }
    Ok(())
}

struct Sealer {
    refusal: Option<Refusal>,
}

impl Sealer {
    fn refuse(&mut self, why: String) {
        if self.refusal.is_none() {
            self.refusal = Some(Refusal(why));
        }
    }
}

impl<'ast> Visit<'ast> for Sealer {
    fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
        if matches!(attr.style, syn::AttrStyle::Inner(_)) {
            self.refuse(format!(
                "It uses the inner attribute `{}`, which is not allowed.",
                shown(attr)
            ));
        }
        let first = attr.path().segments.first().map(|s| s.ident.to_string()).unwrap_or_default();
        if FORBIDDEN_ATTRIBUTES.contains(&first.as_str()) {
            self.refuse(format!(
                "It uses the attribute `{}`, which is not allowed: modules, linking and symbols are the host's to decide.",
                shown(attr)
            ));
        }
        syn::visit::visit_attribute(self, attr);
    }

    fn visit_item_extern_crate(&mut self, item: &'ast syn::ItemExternCrate) {
        syn::visit::visit_item_extern_crate(self, item);
        self.refuse(format!("It declares `extern crate {}`, which is not allowed: use only what is already in scope.", item.ident));
    }

    fn visit_item_foreign_mod(&mut self, item: &'ast syn::ItemForeignMod) {
        // Its attributes first: `#[link]` is the more telling reason.
        syn::visit::visit_item_foreign_mod(self, item);
        self.refuse("It declares an `extern` block, which is not allowed: a capability reaches the host only through batos:uvm.".into());
    }

    fn visit_item_macro(&mut self, item: &'ast syn::ItemMacro) {
        if item.ident.is_some() || item.mac.path.is_ident("macro_rules") {
            self.refuse("It defines a macro, which is not allowed: write plain functions.".into());
        }
        syn::visit::visit_item_macro(self, item);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        // Its attributes first: `#[path]` is the more telling reason.
        syn::visit::visit_item_mod(self, item);
        if item.content.is_none() {
            self.refuse(format!(
                "It declares `mod {};`, which would read a host file: write the code inline.",
                item.ident
            ));
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let name = mac.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
        if FORBIDDEN_MACROS.contains(&name.as_str()) {
            self.refuse(format!(
                "It uses `{name}!`, which is not allowed: it would read the host while compiling."
            ));
        }
        syn::visit::visit_macro(self, mac);
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn plain_functions_pass() {
        for code in [
            "fn factorial(n: i64) -> i64 { (1..=n).product() }",
            "use std::collections::HashSet;\nfn count(a: Vec<i64>) -> i64 { a.into_iter().collect::<HashSet<_>>().len() as i64 }",
            "fn f(s: String) -> String { format!(\"{s}!\") }\n#[derive(Debug)]\nstruct P { x: i64 }",
            "fn environment(x: i64) -> i64 { let envelope = x; envelope }",
            "#[inline]\nfn g(x: i64) -> i64 { x }",
        ] {
            assert_eq!(check(code), Ok(()), "{code}");
        }
    }

    #[test]
    fn every_refused_construct_is_refused_with_its_name() {
        let table: [(&str, &str); 20] = [
            ("fn f() -> String { include_str!(\"/etc/passwd\").into() }", "include_str"),
            ("fn f() -> Vec<u8> { include_bytes!(\"/etc/shadow\").to_vec() }", "include_bytes"),
            ("fn f() -> i64 { include!(\"/tmp/x.rs\") }", "include"),
            ("fn f() -> String { env!(\"HOME\").into() }", "env"),
            ("fn f() -> String { option_env!(\"PATH\").unwrap_or(\"\").into() }", "option_env"),
            ("fn f() -> String { std::env!(\"HOME\").into() }", "env"),
            ("fn f() -> String { core::include_str!(\"/etc/hosts\").into() }", "include_str"),
            ("fn f() { unsafe { core::arch::asm!(\"nop\") } }", "asm"),
            ("core::arch::global_asm!(\"nop\");\nfn f() {}", "global_asm"),
            ("#[path = \"/etc/passwd\"]\nmod m;\nfn f() {}", "path"),
            ("#![allow(unused)]\nfn f() {}", "inner attribute"),
            ("fn f() { #![allow(unused)] }", "inner attribute"),
            ("extern crate std as s;\nfn f() {}", "extern crate"),
            ("#[link(name = \"c\")]\nextern \"C\" { fn getpid() -> i32; }\nfn f() {}", "link"),
            ("#[no_mangle]\npub extern \"C\" fn f() {}", "no_mangle"),
            ("#[export_name = \"invoke\"]\npub fn f() {}", "export_name"),
            ("#[unsafe(no_mangle)]\npub fn f() {}", "unsafe"),
            ("macro_rules! m { () => { 1 } }\nfn f() -> i64 { m!() }", "macro"),
            ("macro_rules! read { ($m:ident) => { $m!(\"/etc/passwd\") } }\nfn f() -> &'static str { read!(include_str) }", "macro"),
            ("fn f() -> &'static str { stringify!(include_str) }", "include_str"),
        ];
        for (code, named) in table {
            let refusal = check(code).expect_err(code);
            assert!(refusal.0.contains(named), "{code}: {refusal}");
        }
    }

    #[test]
    fn code_that_does_not_parse_is_refused_with_where() {
        let refusal = check("fn f( -> i64 { 1 }").expect_err("not Rust");
        assert!(refusal.0.contains("not valid Rust") && refusal.0.contains("line 1"), "{refusal}");
    }
}
