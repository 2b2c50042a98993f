//! Update expressions: `SET`, `REMOVE`, `ADD` and `DELETE` actions on typed attributes.

use std::collections::{BTreeSet, HashSet};
use std::hash::Hash;
use std::marker::PhantomData;

use aws_sdk_dynamodb::types::AttributeValue;

use super::Placeholders;
use crate::attr::{Attr, Path, Value};
use crate::value::{ConvertError, NumberValue, SetElement, ToAttributeValue};

type Operand = Result<AttributeValue, ConvertError>;

#[derive(Clone, Debug)]
pub(crate) enum Action {
    Set(Path, Operand),
    SetIfNotExists(Path, Operand),
    Append(Path, Operand),
    Prepend(Path, Operand),
    /// `SET path = if_not_exists(path, 0) + n`, for counters without an ADD.
    Increment(Path, Operand),
    /// `SET path = if_not_exists(path, 0) - n`; with `floor`, `SET path = path - n` and the
    /// write also requires `path >= n` (unsigned numbers never go below zero).
    Decrement {
        path: Path,
        by: Operand,
        floor: bool,
    },
    Remove(Path),
    Add(Path, Operand),
    Delete(Path, Operand),
}

impl Action {
    /// `true` when applying the action twice leaves what applying it once does: setting a
    /// value (plain or `if_not_exists`) and removing. Adding, incrementing, appending,
    /// prepending and deleting set elements are counted as changes on every application.
    pub(crate) fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Action::Set(..) | Action::SetIfNotExists(..) | Action::Remove(_)
        )
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Action::Set(p, _)
            | Action::SetIfNotExists(p, _)
            | Action::Append(p, _)
            | Action::Prepend(p, _)
            | Action::Increment(p, _)
            | Action::Decrement { path: p, .. }
            | Action::Remove(p)
            | Action::Add(p, _)
            | Action::Delete(p, _) => p,
        }
    }
}

/// The actions of an update on an entity `E`, typed by the attribute handles.
///
/// Built through [`UpdateItem`](crate::ops::UpdateItem)'s methods; exposed so transactions can
/// reuse it.
pub struct Update<E> {
    pub(crate) actions: Vec<Action>,
    _entity: PhantomData<fn() -> E>,
}

impl<E> Default for Update<E> {
    fn default() -> Self {
        Update {
            actions: Vec::new(),
            _entity: PhantomData,
        }
    }
}

impl<E> Clone for Update<E> {
    fn clone(&self) -> Self {
        Update {
            actions: self.actions.clone(),
            _entity: PhantomData,
        }
    }
}

impl<E> std::fmt::Debug for Update<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.actions).finish()
    }
}

/// Types that `ADD` can apply to: numbers (added) and sets (elements added).
pub trait Addable {}
impl<T: NumberValue> Addable for T {}
impl<T: SetElement + Eq + Hash, S> Addable for HashSet<T, S> {}
impl<T: SetElement + Ord> Addable for BTreeSet<T> {}
impl<T: NumberValue> Addable for Option<T> {}

/// Types whose attribute can be removed without making the item unreadable: `Option` and sets.
pub trait Removable {}
impl<T> Removable for Option<T> {}
impl<T, S> Removable for HashSet<T, S> {}
impl<T> Removable for BTreeSet<T> {}

impl<E> Update<E> {
    /// A new, empty update.
    pub fn new() -> Self {
        Self::default()
    }

    /// `SET attr = value`. Setting an `Option` attribute to `None` removes it.
    pub fn set<T: ToAttributeValue, V: Value<T>>(mut self, attr: Attr<E, T>, value: V) -> Self {
        let v = value.into_attribute_value();
        match v {
            Ok(AttributeValue::Null(_)) => self.actions.push(Action::Remove(attr.path())),
            v => self.actions.push(Action::Set(attr.path(), v)),
        }
        self
    }

    /// `SET attr = if_not_exists(attr, value)`: set only when the attribute is absent.
    pub fn set_if_not_exists<T, V: Value<T>>(mut self, attr: Attr<E, T>, value: V) -> Self {
        self.actions.push(Action::SetIfNotExists(
            attr.path(),
            value.into_attribute_value(),
        ));
        self
    }

    /// `ADD attr value`: adds to a number (creating it at 0) or adds elements to a set.
    pub fn add<T: Addable, V: Value<T>>(mut self, attr: Attr<E, T>, value: V) -> Self {
        self.actions
            .push(Action::Add(attr.path(), value.into_attribute_value()));
        self
    }

    /// `SET attr = if_not_exists(attr, 0) + n`: a counter that also works inside nested maps,
    /// where `ADD` cannot reach.
    pub fn increment<T: NumberValue, V: Value<T>>(mut self, attr: Attr<E, T>, by: V) -> Self {
        self.actions
            .push(Action::Increment(attr.path(), by.into_attribute_value()));
        self
    }

    /// `SET attr = attr - n`. For an unsigned type (a `u32` stock count, say) the write also
    /// requires `attr >= n`, so the stored number never goes below zero: a decrement that
    /// would is refused by DynamoDB as a failed condition ([`Error::ConditionFailed`], nothing
    /// written), as is one of an attribute that is not there. For a signed type a missing
    /// attribute counts as 0.
    ///
    /// [`Error::ConditionFailed`]: crate::Error::ConditionFailed
    pub fn decrement<T: NumberValue, V: Value<T>>(mut self, attr: Attr<E, T>, by: V) -> Self {
        self.actions.push(Action::Decrement {
            path: attr.path(),
            by: by.into_attribute_value(),
            floor: T::UNSIGNED,
        });
        self
    }

    /// `DELETE attr elements`: removes elements from a set.
    pub fn delete_elements<T: Addable + ToAttributeValue>(
        mut self,
        attr: Attr<E, T>,
        elements: T,
    ) -> Self {
        self.actions
            .push(Action::Delete(attr.path(), elements.to_attribute_value()));
        self
    }

    /// `REMOVE attr`, for attributes that may be absent (`Option`, sets).
    pub fn remove<T: Removable>(mut self, attr: Attr<E, T>) -> Self {
        self.actions.push(Action::Remove(attr.path()));
        self
    }

    /// `SET attr = list_append(attr, items)`: appends to a list (creating it when absent).
    pub fn append<T: ToAttributeValue>(mut self, attr: Attr<E, Vec<T>>, items: Vec<T>) -> Self {
        self.actions
            .push(Action::Append(attr.path(), items.to_attribute_value()));
        self
    }

    /// `SET attr = list_append(items, attr)`: prepends to a list (creating it when absent).
    pub fn prepend<T: ToAttributeValue>(mut self, attr: Attr<E, Vec<T>>, items: Vec<T>) -> Self {
        self.actions
            .push(Action::Prepend(attr.path(), items.to_attribute_value()));
        self
    }

    /// `true` when no action was added.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Renders the update expression ([`render_actions`]).
    #[cfg(test)]
    pub(crate) fn render(
        &self,
        ph: &mut Placeholders,
        first: Option<&Action>,
    ) -> Result<String, (Path, ConvertError)> {
        render_actions(&self.actions, ph, first)
    }
}

/// The conditions `actions` need to keep numbers in range: `path >= n` for each decrement of
/// an unsigned number.
pub(crate) fn guards(actions: &[Action]) -> Vec<super::condition::Node> {
    use super::condition::{Cmp, Node};
    let floored = actions.iter().filter_map(|a| match a {
        Action::Decrement {
            path,
            by,
            floor: true,
        } => Some(Node::Compare(path.clone(), Cmp::Ge, by.clone())),
        _ => None,
    });
    floored.collect()
}

/// Renders an update expression of `actions`; `first`, when given, is the first action of its
/// clause (the version bump).
pub(crate) fn render_actions(
    actions: &[Action],
    ph: &mut Placeholders,
    first: Option<&Action>,
) -> Result<String, (Path, ConvertError)> {
    // About what an action takes (`#n0 = :v0, `), so the text is rarely reallocated.
    let mut out = String::with_capacity(24 * (actions.len() + 1));
    for clause in [Clause::Set, Clause::Remove, Clause::Add, Clause::Delete] {
        let all = first.into_iter().chain(actions);
        for (i, action) in all.filter(|a| a.clause() == clause).enumerate() {
            if i > 0 {
                out.push_str(", ");
            } else {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(clause.keyword());
                out.push(' ');
            }
            action.render(ph, &mut out)?;
        }
    }
    Ok(out)
}

/// The four clauses of an update expression, in the order they are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Clause {
    Set,
    Remove,
    Add,
    Delete,
}

impl Clause {
    fn keyword(self) -> &'static str {
        match self {
            Clause::Set => "SET",
            Clause::Remove => "REMOVE",
            Clause::Add => "ADD",
            Clause::Delete => "DELETE",
        }
    }
}

impl Action {
    fn clause(&self) -> Clause {
        match self {
            Action::Set(..)
            | Action::SetIfNotExists(..)
            | Action::Append(..)
            | Action::Prepend(..)
            | Action::Increment(..)
            | Action::Decrement { .. } => Clause::Set,
            Action::Remove(_) => Clause::Remove,
            Action::Add(..) => Clause::Add,
            Action::Delete(..) => Clause::Delete,
        }
    }

    /// Writes the action as its clause lists it: `#n0 = :v0`, `#n1 :v1`, `#n2`.
    fn render(&self, ph: &mut Placeholders, out: &mut String) -> Result<(), (Path, ConvertError)> {
        let value = |ph: &mut Placeholders, out: &mut String, v: &Operand| match v {
            Ok(v) => {
                ph.push_value(out, v.clone());
                Ok(())
            }
            Err(e) => Err((self.path().clone(), e.clone())),
        };
        // `#p = if_not_exists(#p, default)`, shared by the actions that may find nothing there.
        let if_not_exists = |ph: &mut Placeholders, out: &mut String, default: AttributeValue| {
            out.push_str("if_not_exists(");
            ph.push_path(out, self.path());
            out.push_str(", ");
            ph.push_value(out, default);
            out.push(')');
        };
        ph.push_path(out, self.path());
        match self {
            Action::Set(_, v) => {
                out.push_str(" = ");
                value(ph, out, v)?;
            }
            Action::SetIfNotExists(_, v) => {
                out.push_str(" = if_not_exists(");
                ph.push_path(out, self.path());
                out.push_str(", ");
                value(ph, out, v)?;
                out.push(')');
            }
            Action::Append(_, v) => {
                out.push_str(" = list_append(");
                if_not_exists(ph, out, AttributeValue::L(Vec::new()));
                out.push_str(", ");
                value(ph, out, v)?;
                out.push(')');
            }
            Action::Prepend(_, v) => {
                out.push_str(" = list_append(");
                value(ph, out, v)?;
                out.push_str(", ");
                if_not_exists(ph, out, AttributeValue::L(Vec::new()));
                out.push(')');
            }
            Action::Increment(_, v) => {
                out.push_str(" = ");
                if_not_exists(ph, out, AttributeValue::N("0".into()));
                out.push_str(" + ");
                value(ph, out, v)?;
            }
            Action::Decrement { path, by, floor } => {
                out.push_str(" = ");
                if *floor {
                    // The guard (`path >= n`) requires the attribute: no default.
                    ph.push_path(out, path);
                } else {
                    if_not_exists(ph, out, AttributeValue::N("0".into()));
                }
                out.push_str(" - ");
                value(ph, out, by)?;
            }
            Action::Remove(_) => {}
            Action::Add(_, v) | Action::Delete(_, v) => {
                out.push(' ');
                value(ph, out, v)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E;

    #[test]
    fn renders_every_clause() {
        let u = Update::<E>::new()
            .set(Attr::<E, String>::named("name"), "Ada")
            .set(Attr::<E, Option<String>>::named("nick"), None::<String>)
            .add(Attr::<E, i64>::named("logins"), 1)
            .append(Attr::<E, Vec<String>>::named("tags"), vec!["x".to_string()]);
        let mut ph = Placeholders::default();
        let expr = u.render(&mut ph, None).unwrap();
        assert_eq!(
            expr,
            "SET #n0 = :v0, #n1 = list_append(if_not_exists(#n1, :v1), :v2) REMOVE #n2 ADD #n3 :v3"
        );
        let (names, values) = ph.into_maps();
        let names = names.unwrap();
        assert_eq!(
            [&names["#n0"], &names["#n1"], &names["#n2"], &names["#n3"]],
            ["name", "tags", "nick", "logins"]
        );
        assert_eq!(values.unwrap().len(), 4);
    }

    #[test]
    fn decrements_floor_unsigned_numbers_only() {
        let u = Update::<E>::new()
            .decrement(Attr::<E, u32>::named("stock"), 2u32)
            .decrement(Attr::<E, i64>::named("balance"), 5i64);
        let mut ph = Placeholders::default();
        let expr = u.render(&mut ph, None).unwrap();
        assert_eq!(
            expr,
            "SET #n0 = #n0 - :v0, #n1 = if_not_exists(#n1, :v1) - :v2"
        );
        let guards = guards(&u.actions);
        assert_eq!(guards.len(), 1, "only the unsigned one");
        assert_eq!(guards[0].describe(), "stock >= 2");
        assert!(!u.actions[0].is_idempotent());
    }
}
