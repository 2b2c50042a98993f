//! Error collection: every parse step and check pushes its errors into one [`Ctxt`], so all of
//! them surface together instead of one per compile.

use std::cell::RefCell;
use std::fmt::Display;
use std::thread;

use quote::ToTokens;

/// Collects errors while the input is parsed and checked.
///
/// A context must end in [`Ctxt::check`]: dropping it with its errors unread would lose them, so
/// that panics (unless the thread is already panicking).
pub(crate) struct Ctxt {
    /// `None` once [`Ctxt::check`] has taken the errors.
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    /// An empty context.
    pub(crate) fn new() -> Self {
        Ctxt {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// Records an error spanned at `tokens`.
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&self, tokens: T, message: M) {
        self.syn_error(syn::Error::new_spanned(tokens.into_token_stream(), message));
    }

    /// Records an error that already has its span.
    pub(crate) fn syn_error(&self, err: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("Ctxt used after check()")
            .push(err);
    }

    /// Combines all recorded errors into one, or `Ok` if there were none.
    pub(crate) fn check(self) -> syn::Result<()> {
        let errors = self.errors.borrow_mut().take().expect("Ctxt checked twice");
        let mut errors = errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for rest in errors {
            combined.combine(rest);
        }
        Err(combined)
    }
}

impl Default for Ctxt {
    fn default() -> Self {
        Ctxt::new()
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !thread::panicking() && self.errors.borrow().is_some() {
            panic!("dynamite-derive: Ctxt dropped without check(): its errors would be lost");
        }
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;

    use super::*;

    #[test]
    fn no_errors_is_ok() {
        assert!(Ctxt::new().check().is_ok());
    }

    #[test]
    fn reports_every_error_at_once() {
        let cx = Ctxt::new();
        cx.syn_error(syn::Error::new(Span::call_site(), "first"));
        cx.error_spanned_by(quote::quote!(x), "second");
        let messages: Vec<String> = cx
            .check()
            .expect_err("two errors")
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(messages, ["first", "second"]);
    }

    #[test]
    #[should_panic(expected = "dropped without check()")]
    fn dropping_unchecked_panics() {
        let cx = Ctxt::new();
        cx.error_spanned_by(quote::quote!(x), "lost");
    }

    #[test]
    fn dropping_while_panicking_does_not_abort() {
        // A second panic inside `Drop` would abort the test process instead of failing it.
        let result = std::panic::catch_unwind(|| {
            let _cx = Ctxt::new();
            panic!("the original problem");
        });
        let payload = result.expect_err("panicked");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"the original problem")
        );
    }
}
