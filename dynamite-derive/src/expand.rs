//! Code generation: the `Entity` impl (schema, item conversion, primary key), the typed key
//! constructor, attribute handles and index handles.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, LitStr};

use crate::ast::{Container, Field, FieldDefault, IndexKind};
use crate::case::field_handle_name;
use crate::check::{self, Resolved, ResolvedProjection};
use crate::ctxt::Ctxt;

pub fn derive_entity(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let container = crate::attr::parse(&cx, input);
    let resolved = container.as_ref().and_then(|c| check::check(&cx, c));
    cx.check()?;
    let (Some(cont), Some(resolved)) = (container, resolved) else {
        unreachable!("errors were reported above")
    };
    Ok(generate(&cont, &resolved))
}

fn generate(cont: &Container, res: &Resolved) -> TokenStream {
    let ident = cont.ident;
    let entity_name = ident.to_string();
    let table = &res.table;
    let fields = &cont.fields;

    let key_schema = |i: usize, trait_name: &str| {
        let f = &fields[i];
        let name = &f.attr_name;
        let ty = f.ty;
        let trait_ident = format_ident!("{}", trait_name);
        quote_spanned! {ty.span()=>
            ::dynamite::KeySchema {
                name: #name,
                scalar: <#ty as ::dynamite::#trait_ident>::SCALAR,
            }
        }
    };
    let pk_schema = key_schema(res.partition_key, "KeyAttribute");
    let sk_schema = match res.sort_key {
        Some(i) => {
            let k = key_schema(i, "KeyAttribute");
            quote!(::core::option::Option::Some(#k))
        }
        None => quote!(::core::option::Option::None),
    };
    let index_schemas = res.indexes.iter().map(|index| {
        let name = &index.name;
        let kind = match index.kind {
            IndexKind::Global => quote!(::dynamite::IndexKind::Global),
            IndexKind::Local => quote!(::dynamite::IndexKind::Local),
        };
        let pk = key_schema(index.partition_key, "IndexKeyAttribute");
        let sk = match index.sort_key {
            Some(i) => {
                let k = key_schema(i, "IndexKeyAttribute");
                quote!(::core::option::Option::Some(#k))
            }
            None => quote!(::core::option::Option::None),
        };
        let projection = match &index.projection {
            ResolvedProjection::All => quote!(::dynamite::Projection::All),
            ResolvedProjection::KeysOnly => quote!(::dynamite::Projection::KeysOnly),
            ResolvedProjection::Include(names) => {
                quote!(::dynamite::Projection::Include(&[#(#names),*]))
            }
        };
        quote! {
            ::dynamite::IndexSchema {
                name: #name,
                kind: #kind,
                partition_key: #pk,
                sort_key: #sk,
                projection: #projection,
            }
        }
    });
    let special = |slot: Option<usize>, trait_name: &str| match slot {
        Some(i) => {
            let f = &fields[i];
            let name = &f.attr_name;
            let ty = f.ty;
            let checker = format_ident!("{}", trait_name);
            // The const fn's trait bound checks the field type at its own span.
            quote_spanned! {ty.span()=>
                ::core::option::Option::Some(::dynamite::__private::#checker::<#ty>(#name))
            }
        }
        None => quote!(::core::option::Option::None),
    };
    let ttl = special(res.ttl, "ttl_attribute");
    // The version field's type is checked by the generated `Entity::version` (one error, at
    // the field's type, rather than two).
    let version = match res.version {
        Some(i) => {
            let name = &fields[i].attr_name;
            quote!(::core::option::Option::Some(#name))
        }
        None => quote!(::core::option::Option::None),
    };
    let attribute_names: Vec<&str> = fields
        .iter()
        .filter(|f| !f.skip)
        .map(|f| f.attr_name.as_str())
        .collect();

    let field_count = attribute_names.len();
    let fingerprint = fingerprint(cont, res);
    let cache = match &cont.cache {
        None => quote!(::core::option::Option::None),
        Some(c) => {
            let enabled = !c.off;
            let queries = c.queries;
            let opt = |v: Option<u64>| match v {
                Some(ms) => quote!(::core::option::Option::Some(#ms)),
                None => quote!(::core::option::Option::None),
            };
            let ttl = opt(c.ttl_ms);
            let negative = opt(c.negative_ttl_ms);
            quote! {
                ::core::option::Option::Some(::dynamite::CacheSettings {
                    enabled: #enabled,
                    ttl_ms: #ttl,
                    negative_ttl_ms: #negative,
                    queries: #queries,
                })
            }
        }
    };
    let encode_fields = fields
        .iter()
        .filter(|f| !f.skip)
        .map(|f| encode_field(&entity_name, f));
    let decode_fields = fields.iter().map(|f| decode_field(&entity_name, f));
    let field_idents = fields.iter().map(|f| f.ident);
    let unknown_check = cont.deny_unknown_fields.then(|| {
        let known: Vec<String> = fields
            .iter()
            .filter(|f| !f.skip)
            .flat_map(|f| {
                std::iter::once(f.attr_name.clone()).chain(f.aliases.iter().map(LitStr::value))
            })
            .collect();
        quote! {
            ::dynamite::__private::deny_unknown(#entity_name, &item, &[#(#known),*])?;
        }
    });

    let key_value = |i: usize| {
        let f = &fields[i];
        let fi = f.ident;
        let ty = f.ty;
        quote!(<#ty as ::dynamite::KeyAttribute>::to_key_value(&self.#fi))
    };
    let pk_value = key_value(res.partition_key);
    let sk_value = match res.sort_key {
        Some(i) => {
            let v = key_value(i);
            quote!(::core::option::Option::Some(#v))
        }
        None => quote!(::core::option::Option::None),
    };
    let version_fn = res.version.map(|i| {
        let f = &fields[i];
        let fi = f.ident;
        let ty = f.ty;
        quote! {
            fn version(&self) -> ::core::option::Option<u64> {
                <#ty as ::dynamite::VersionAttribute>::current(&self.#fi)
            }
        }
    });

    // Typed key constructor: String keys take `impl Into<String>`, others their own type.
    let key_param = |i: usize, param: &syn::Ident| {
        let ty = fields[i].ty;
        if is_string(ty) {
            (
                quote!(#param: impl ::core::convert::Into<::std::string::String>),
                quote!(&#param.into()),
            )
        } else {
            (quote!(#param: #ty), quote!(&#param))
        }
    };
    let pk_param_ident = fields[res.partition_key].ident.clone();
    let pk_param_ident = format_ident!("{}", pk_param_ident.to_string().trim_start_matches("r#"));
    let (pk_param, pk_arg) = key_param(res.partition_key, &pk_param_ident);
    let pk_ty = fields[res.partition_key].ty;
    let (sk_param, sk_expr, key_doc) = match res.sort_key {
        Some(i) => {
            let sk_ident =
                format_ident!("{}", fields[i].ident.to_string().trim_start_matches("r#"));
            let (param, arg) = key_param(i, &sk_ident);
            let ty = fields[i].ty;
            (
                Some(quote!(, #param)),
                quote!(::core::option::Option::Some(<#ty as ::dynamite::KeyAttribute>::to_key_value(#arg))),
                format!(
                    "The primary key of a `{entity_name}`: partition key `{}`, sort key `{}`.",
                    fields[res.partition_key].attr_name, fields[i].attr_name
                ),
            )
        }
        None => (
            None,
            quote!(::core::option::Option::None),
            format!(
                "The primary key of a `{entity_name}`: partition key `{}`.",
                fields[res.partition_key].attr_name
            ),
        ),
    };

    let attr_consts = fields.iter().filter(|f| !f.skip).map(|f| {
        let const_ident = format_ident!("{}", field_handle_name(f.ident));
        let ty = f.ty;
        let name = &f.attr_name;
        let doc =
            format!("Typed handle of attribute `{name}`, for conditions, updates and projections.");
        quote! {
            #[doc = #doc]
            pub const #const_ident: ::dynamite::Attr<#ident, #ty> = ::dynamite::Attr::new(#name);
        }
    });
    let index_consts = res.indexes.iter().map(|index| {
        let const_ident = format_ident!("{}", index.const_name);
        let name = &index.name;
        let doc = format!("Typed handle of index `{name}`.");
        quote! {
            #[doc = #doc]
            pub const #const_ident: ::dynamite::IndexHandle<#ident> = ::dynamite::IndexHandle::new(#name);
        }
    });

    quote! {
        #[automatically_derived]
        impl ::dynamite::Entity for #ident {
            fn schema() -> &'static ::dynamite::TableSchema {
                static SCHEMA: ::dynamite::TableSchema = ::dynamite::TableSchema {
                    entity: #entity_name,
                    table: #table,
                    partition_key: #pk_schema,
                    sort_key: #sk_schema,
                    indexes: &[#(#index_schemas),*],
                    ttl: #ttl,
                    version: #version,
                    attributes: &[#(#attribute_names),*],
                    fingerprint: #fingerprint,
                    cache: #cache,
                };
                &SCHEMA
            }

            fn to_item(&self) -> ::dynamite::Result<::dynamite::Item> {
                #[allow(unused_imports)]
                use ::dynamite::__private::{EncodeNative as _, EncodeSerde as _};
                let mut item = ::dynamite::Item::with_capacity(#field_count);
                #(#encode_fields)*
                ::core::result::Result::Ok(item)
            }

            fn from_item(mut item: ::dynamite::Item) -> ::dynamite::Result<Self> {
                #[allow(unused_imports)]
                use ::dynamite::__private::{DecodeNative as _, DecodeSerde as _};
                #unknown_check
                ::core::result::Result::Ok(Self {
                    #(#field_idents: #decode_fields,)*
                })
            }

            fn primary_key(&self) -> ::dynamite::Key<Self> {
                ::dynamite::Key::from_values(#pk_value, #sk_value)
            }

            #[doc(hidden)]
            fn __clone_for_cache(&self) -> ::core::option::Option<Self> {
                #[allow(unused_imports)]
                use ::dynamite::__private::{CloneNative as _, CloneNone as _};
                (&&::dynamite::__private::Wrap(self)).__dynamite_clone()
            }

            #version_fn
        }

        #[automatically_derived]
        impl #ident {
            #[doc = #key_doc]
            pub fn key(#pk_param #sk_param) -> ::dynamite::Key<Self> {
                ::dynamite::Key::from_values(
                    <#pk_ty as ::dynamite::KeyAttribute>::to_key_value(#pk_arg),
                    #sk_expr,
                )
            }

            #(#attr_consts)*
            #(#index_consts)*
        }
    }
}

fn encode_field(entity: &str, f: &Field) -> TokenStream {
    let fi = f.ident;
    let name = &f.attr_name;
    let encode = quote! {
        if let ::core::option::Option::Some(value) = (&&::dynamite::__private::Wrap(&self.#fi))
            .__dynamite_encode()
            .map_err(|e| ::dynamite::__private::encode_error(#entity, #name, e))?
        {
            item.insert(::std::string::String::from(#name), value);
        }
    };
    match &f.skip_serializing_if {
        Some(path) => quote! {
            if !#path(&self.#fi) {
                #encode
            }
        },
        None => encode,
    }
}

fn decode_field(entity: &str, f: &Field) -> TokenStream {
    if f.skip {
        return quote!(::core::default::Default::default());
    }
    let ty = f.ty;
    let name = &f.attr_name;
    let aliases: Vec<String> = f.aliases.iter().map(LitStr::value).collect();
    let missing = match &f.default {
        FieldDefault::Default => quote!(::core::default::Default::default()),
        FieldDefault::Path(path) => quote!(#path()),
        FieldDefault::None => quote! {
            (&&::dynamite::__private::Decode::<#ty>::new())
                .__dynamite_decode_missing()
                .ok_or_else(|| ::dynamite::__private::missing_attribute(#entity, #name))?
        },
    };
    quote! {
        match item.remove(#name) #(.or_else(|| item.remove(#aliases)))* {
            ::core::option::Option::Some(value) => (&&::dynamite::__private::Decode::<#ty>::new())
                .__dynamite_decode(value)
                .map_err(|e| ::dynamite::__private::field_error(#entity, #name, e))?,
            ::core::option::Option::None => #missing,
        }
    }
}

fn is_string(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "String" && s.arguments.is_empty()))
}

/// A stable fingerprint of what an item of this entity looks like: table, keys, and every
/// field's attribute name, Rust type and roles (FNV-1a). Cached values carry it, so entries
/// written by another version of the entity are never read as this one.
fn fingerprint(cont: &Container, res: &Resolved) -> u64 {
    let mut text = format!(
        "{}|{}|{}|{:?}",
        cont.ident,
        res.table.value(),
        res.partition_key,
        res.sort_key
    );
    for f in &cont.fields {
        let ty = f.ty;
        text.push_str(&format!(
            "|{}:{}:{}:{}",
            f.attr_name,
            quote!(#ty),
            f.skip,
            f.roles.len()
        ));
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
