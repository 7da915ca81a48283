//! # batos-guest-sdk-macros
//!
//! The `#[capability]` attribute that `batos-guest-sdk` re-exports. It narrows itself to
//! `syn`, `quote` and `proc-macro2`, and generates code that names only
//! `::batos_guest_sdk` items, so what a capability can do is decided by the SDK and the
//! WIT world, never here.
//!
//! The attribute keeps the function as written and adds the export around it: each
//! argument is converted with `FromValue` (a borrowed `&str`, `&[T]` or `&T` parameter
//! takes an owned `String`, `Vec<T>` or `T` and lends it), the answer with `IntoValue`
//! (a `Result` answer's error with `IntoError`), and a wrong number or type of arguments
//! is a `bad-arguments` error naming the argument. A first parameter of type `&Object`
//! is the receiver, not an argument.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{parse_macro_input, FnArg, ItemFn, ReturnType, Type};

/// Exports an ordinary Rust function as the capability's `invoke`.
///
/// ```text
/// use batos_guest_sdk::prelude::*;
///
/// #[capability]
/// fn mean(values: &[f64]) -> Result<f64, Error> {
///     if values.is_empty() {
///         return Err("the mean of nothing is undefined".into());
///     }
///     Ok(values.iter().sum::<f64>() / values.len() as f64)
/// }
/// ```
///
/// It also defines `fn __batos_call(receiver: Option<&Object>, args: Vec<Value>)`, the
/// typed entry that `batos_guest_sdk::testing::call` runs in a plain `cargo test`.
#[proc_macro_attribute]
pub fn capability(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = Tokens::from(attr);
        return quote_spanned!(attr.span()=> compile_error!("#[capability] takes no arguments");)
            .into();
    }
    let function = parse_macro_input!(item as ItemFn);
    match expand(&function) {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            let error = e.to_compile_error();
            quote!(#function #error).into()
        }
    }
}

fn expand(function: &ItemFn) -> syn::Result<Tokens> {
    let sig = &function.sig;
    if let Some(generics) = sig.generics.params.first() {
        if !matches!(generics, syn::GenericParam::Lifetime(_)) {
            return Err(syn::Error::new(
                generics.span(),
                "a capability cannot be generic: every argument needs one concrete type",
            ));
        }
    }
    if sig.asyncness.is_some() {
        return Err(syn::Error::new(sig.span(), "a capability cannot be async"));
    }
    let name = &sig.ident;
    let label = name.to_string();
    let mut lifts = Vec::new();
    let mut passed = Vec::new();
    let mut arguments = 0usize;
    for (position, input) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(param) = input else {
            return Err(syn::Error::new(input.span(), "a capability is a free function"));
        };
        let ty = &*param.ty;
        if position == 0 && is_object_ref(ty) {
            passed.push(quote!(::batos_guest_sdk::__receiver(receiver, #label)?));
            continue;
        }
        let index = arguments;
        arguments += 1;
        let local = format_ident!("__batos_arg{}", index);
        let (owned, lend, mutable) = match ty {
            Type::Reference(r) if r.mutability.is_some() => {
                (owned_of(&r.elem), quote!(&mut #local), true)
            }
            Type::Reference(r) => (owned_of(&r.elem), quote!(&#local), false),
            Type::ImplTrait(_) => {
                return Err(syn::Error::new(
                    ty.span(),
                    "a capability's parameters need concrete types, not `impl Trait`",
                ))
            }
            other => (quote!(#other), quote!(#local), false),
        };
        let binding = if mutable { quote!(let mut #local) } else { quote!(let #local) };
        lifts.push(quote! {
            #binding: #owned = ::batos_guest_sdk::__argument(&mut args, #index)?;
        });
        passed.push(lend);
    }
    let answer = match &sig.output {
        ReturnType::Default => {
            quote!({ #name(#(#passed),*); ::batos_guest_sdk::IntoValue::into_value(()) })
        }
        ReturnType::Type(_, ty) if is_result(ty) => quote! {
            match #name(#(#passed),*) {
                ::std::result::Result::Ok(value) => ::batos_guest_sdk::IntoValue::into_value(value),
                ::std::result::Result::Err(error) => ::std::result::Result::Err(::batos_guest_sdk::IntoError::into_error(error)),
            }
        },
        ReturnType::Type(..) => {
            quote!(::batos_guest_sdk::IntoValue::into_value(#name(#(#passed),*)))
        }
    };
    Ok(quote! {
        #function

        /// The typed entry `#[capability]` made: converts the arguments, calls the
        /// function, converts its answer.
        #[doc(hidden)]
        pub fn __batos_call(
            receiver: ::std::option::Option<&::batos_guest_sdk::Object>,
            args: ::std::vec::Vec<::batos_guest_sdk::Value>,
        ) -> ::std::result::Result<::batos_guest_sdk::Value, ::batos_guest_sdk::Error> {
            let mut args = ::batos_guest_sdk::__arity(args, #arguments, #label)?;
            #(#lifts)*
            #answer
        }

        ::batos_guest_sdk::__export_typed!(__batos_call);
    })
}

/// Whether `ty` is `&Object` (any path ending in `Object`).
fn is_object_ref(ty: &Type) -> bool {
    let Type::Reference(r) = ty else { return false };
    matches!(&*r.elem, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Object"))
}

/// Whether a return type is a `Result` (any path ending in `Result`).
fn is_result(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Result"))
}

/// The owned type a borrowed parameter's value is converted to: `str` → `String`,
/// `[T]` → `Vec<T>`, anything else itself.
fn owned_of(elem: &Type) -> Tokens {
    match elem {
        Type::Path(p) if p.path.is_ident("str") => quote!(::std::string::String),
        Type::Slice(s) => {
            let item = &s.elem;
            quote!(::std::vec::Vec<#item>)
        }
        other => quote!(#other),
    }
}
