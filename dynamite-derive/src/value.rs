//! `#[derive(Value)]`: a type of one's own as an attribute value. A unit-only enum is stored as
//! a string, each variant under the name serde gives it (`#[serde(rename_all = "...")]` and
//! `#[serde(rename = "...")]` are honoured, so the derive agrees with the entity's own serde
//! conversion); a newtype (`struct Sku(String)`) is stored as its inner value. Parsed into a
//! [`Shape`], every problem collected in the [`Ctxt`], then expanded.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Type};

use crate::case::RenameRule;
use crate::ctxt::Ctxt;
use crate::symbol::{Symbol, RENAME, RENAME_ALL, SERDE};

/// What the type is, as far as storing it goes.
enum Shape<'a> {
    /// Unit variants and their stored names.
    Enum(Vec<(&'a Ident, String)>),
    /// The inner type of a tuple struct of one field.
    Newtype(&'a Type),
}

pub(crate) fn derive_value(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let shape = parse(&cx, input);
    cx.check()?;
    let shape = shape.expect("no errors, so a shape");
    Ok(match shape {
        Shape::Enum(variants) => expand_enum(&input.ident, &variants),
        Shape::Newtype(inner) => expand_newtype(&input.ident, inner),
    })
}

fn parse<'a>(cx: &Ctxt, input: &'a DeriveInput) -> Option<Shape<'a>> {
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(
            &input.generics,
            "#[derive(Value)] does not support generic types",
        );
        return None;
    }
    match &input.data {
        Data::Enum(data) => {
            let rule = serde_rename_all(cx, input);
            let mut variants = Vec::new();
            for variant in &data.variants {
                if !matches!(variant.fields, Fields::Unit) {
                    cx.error_spanned_by(
                        variant,
                        "#[derive(Value)] stores an enum as a string: every variant must be a unit variant",
                    );
                    continue;
                }
                let name = serde_rename(cx, &variant.attrs)
                    .unwrap_or_else(|| rule.apply_to_variant(&variant.ident.to_string()));
                if variants.iter().any(|(_, n): &(&Ident, String)| *n == name) {
                    cx.error_spanned_by(variant, format!("two variants are stored as \"{name}\""));
                }
                variants.push((&variant.ident, name));
            }
            if data.variants.is_empty() {
                cx.error_spanned_by(
                    &input.ident,
                    "an enum without variants has no value to store",
                );
            }
            Some(Shape::Enum(variants))
        }
        Data::Struct(data) => match &data.fields {
            Fields::Unnamed(fields) if fields.unnamed.len() == 1 => {
                Some(Shape::Newtype(&fields.unnamed[0].ty))
            }
            _ => {
                cx.error_spanned_by(
                    &input.ident,
                    "#[derive(Value)] takes a newtype (`struct Sku(String);`) or an enum of unit variants",
                );
                None
            }
        },
        Data::Union(_) => {
            cx.error_spanned_by(&input.ident, "#[derive(Value)] does not support unions");
            None
        }
    }
}

/// `#[serde(rename_all = "...")]` on the enum (other serde options are serde's business).
fn serde_rename_all(cx: &Ctxt, input: &DeriveInput) -> RenameRule {
    let Some(lit) = serde_string(cx, &input.attrs, RENAME_ALL) else {
        return RenameRule::None;
    };
    RenameRule::from_str(&lit.value()).unwrap_or_else(|| {
        let message = format!("unknown rename rule `{}`", lit.value());
        cx.error_spanned_by(&lit, message);
        RenameRule::None
    })
}

/// `#[serde(rename = "...")]` on a variant.
fn serde_rename(cx: &Ctxt, attrs: &[syn::Attribute]) -> Option<String> {
    serde_string(cx, attrs, RENAME).map(|lit| lit.value())
}

/// The string of `#[serde(key = "...")]` in `attrs` (the last one given).
fn serde_string(cx: &Ctxt, attrs: &[syn::Attribute], key: Symbol) -> Option<LitStr> {
    let mut found = None;
    for attr in attrs.iter().filter(|a| a.path() == SERDE) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path == key {
                found = Some(meta.value()?.parse()?);
            } else {
                skip(&meta)?;
            }
            Ok(())
        });
        if let Err(err) = parsed {
            cx.syn_error(err);
        }
    }
    found
}

/// Consumes an option this derive does not read (`alias = "..."`, `other`, ...).
fn skip(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip(&inner))?;
    }
    Ok(())
}

fn expand_enum(name: &Ident, variants: &[(&Ident, String)]) -> TokenStream {
    let idents: Vec<&Ident> = variants.iter().map(|(i, _)| *i).collect();
    let names: Vec<&str> = variants.iter().map(|(_, n)| n.as_str()).collect();
    let expected = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let type_name = name.to_string();
    quote! {
        impl #name {
            /// The string this value is stored as.
            pub const fn as_stored_str(&self) -> &'static str {
                match self { #(#name::#idents => #names,)* }
            }
        }
        impl ::dynamite::ToAttributeValue for #name {
            fn to_attribute_value(
                &self,
            ) -> ::core::result::Result<::dynamite::aws_sdk_dynamodb::types::AttributeValue, ::dynamite::value::ConvertError> {
                ::core::result::Result::Ok(::dynamite::KeyAttribute::to_key_value(self))
            }
        }
        impl ::dynamite::FromAttributeValue for #name {
            fn from_attribute_value(
                value: ::dynamite::aws_sdk_dynamodb::types::AttributeValue,
            ) -> ::core::result::Result<Self, ::dynamite::value::ConvertError> {
                let text = <::std::string::String as ::dynamite::FromAttributeValue>::from_attribute_value(value)?;
                match text.as_str() {
                    #(#names => ::core::result::Result::Ok(#name::#idents),)*
                    other => ::core::result::Result::Err(::dynamite::value::ConvertError::new(::std::format!(
                        "\"{}\" is not a {}: expected one of {}", other, #type_name, #expected
                    ))),
                }
            }
        }
        impl ::dynamite::KeyAttribute for #name {
            const SCALAR: ::dynamite::ScalarType = ::dynamite::ScalarType::String;
            fn to_key_value(&self) -> ::dynamite::aws_sdk_dynamodb::types::AttributeValue {
                ::dynamite::aws_sdk_dynamodb::types::AttributeValue::S(
                    ::std::string::String::from(self.as_stored_str()),
                )
            }
        }
    }
}

/// The last segment of a path type's name (`std::string::String` → `String`).
fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) if path.qself.is_none() => {
            Some(path.path.segments.last()?.ident.to_string())
        }
        _ => None,
    }
}

const KEY_TYPES: &[&str] = &[
    "String", "Binary", "i8", "i16", "i32", "i64", "isize", "u8", "u16", "u32", "u64", "usize",
];
const NUMBER_TYPES: &[&str] = &[
    "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize", "f32",
    "f64",
];

fn expand_newtype(name: &Ident, inner: &Type) -> TokenStream {
    let last = last_segment(inner);
    let is = |list: &[&str]| last.as_deref().is_some_and(|l| list.contains(&l));
    // A key or a number only when the inner type is one: a false bound on a concrete type
    // would not compile.
    let key = is(KEY_TYPES).then(|| {
        quote! {
            impl ::dynamite::KeyAttribute for #name {
                const SCALAR: ::dynamite::ScalarType = <#inner as ::dynamite::KeyAttribute>::SCALAR;
                fn to_key_value(&self) -> ::dynamite::aws_sdk_dynamodb::types::AttributeValue {
                    ::dynamite::KeyAttribute::to_key_value(&self.0)
                }
            }
        }
    });
    let number = is(NUMBER_TYPES).then(|| {
        quote! {
            impl ::dynamite::value::NumberValue for #name {
                const UNSIGNED: bool = <#inner as ::dynamite::value::NumberValue>::UNSIGNED;
            }
        }
    });
    quote! {
        impl ::dynamite::ToAttributeValue for #name {
            fn to_attribute_value(
                &self,
            ) -> ::core::result::Result<::dynamite::aws_sdk_dynamodb::types::AttributeValue, ::dynamite::value::ConvertError> {
                ::dynamite::ToAttributeValue::to_attribute_value(&self.0)
            }
            fn is_absent(&self) -> bool {
                ::dynamite::ToAttributeValue::is_absent(&self.0)
            }
        }
        impl ::dynamite::FromAttributeValue for #name {
            fn from_attribute_value(
                value: ::dynamite::aws_sdk_dynamodb::types::AttributeValue,
            ) -> ::core::result::Result<Self, ::dynamite::value::ConvertError> {
                <#inner as ::dynamite::FromAttributeValue>::from_attribute_value(value).map(#name)
            }
            fn from_absent() -> ::core::option::Option<Self> {
                <#inner as ::dynamite::FromAttributeValue>::from_absent().map(#name)
            }
        }
        #key
        #number
    }
}
