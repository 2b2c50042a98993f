//! `#[derive(Entity)]` for [dynamite](https://docs.rs/dynamite).
//!
//! Laid out like `serde_derive`: this file only parses and hands over;
//! [`attr`] reads `#[dynamite(...)]` and `#[serde(...)]` attributes (every name it knows is a
//! constant in [`symbol`]), [`ast`] is the model of an entity, [`check`] does the cross-field
//! validation, and [`expand`] generates code. Every problem is a `syn::Error` spanned at the
//! offending token, collected in a [`ctxt::Ctxt`], and all of them are reported at once.
#![forbid(unsafe_code)]
// syn's idiom: `ParseStream` and `Punctuated<..>` are written without their lifetimes.
#![allow(elided_lifetimes_in_paths)]

mod ast;
mod attr;
mod case;
mod check;
mod ctxt;
mod expand;
mod symbol;
mod value;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `dynamite::Entity`. See the `dynamite` crate documentation for the attributes.
#[proc_macro_derive(Entity, attributes(dynamite))]
pub fn derive_entity(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_entity(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives dynamite's value traits for a type of one's own, so it can be an attribute, a key,
/// an index key, a filter value and an update value: a unit-only enum is stored as a string
/// (each variant under serde's name for it), a newtype as its inner value. See the `dynamite`
/// crate documentation.
#[proc_macro_derive(Value, attributes(serde))]
pub fn derive_value(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    value::derive_value(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
