//! Typed condition expressions, built from attribute handles.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Not;

use aws_sdk_dynamodb::types::AttributeValue;

use super::Placeholders;
use crate::attr::{Attr, Path, Value};
use crate::value::{ConvertError, ToAttributeValue};

/// A condition on items of entity `E`: `User::STATUS.eq("active").and(User::AGE.gt(18))`.
///
/// Used by conditional writes now and by queries' filters. Combine with [`and`](Self::and),
/// [`or`](Self::or) and `!` / [`not`](Self::not).
pub struct Condition<E> {
    pub(crate) node: Node,
    _entity: PhantomData<fn() -> E>,
}

impl<E> Clone for Condition<E> {
    fn clone(&self) -> Self {
        Condition::from_node(self.node.clone())
    }
}

impl<E> fmt::Debug for Condition<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.node)
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "<>",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }
}

/// The DynamoDB type names usable with [`Attr::is_type`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttributeType {
    /// `S`
    String,
    /// `N`
    Number,
    /// `B`
    Binary,
    /// `BOOL`
    Bool,
    /// `NULL`
    Null,
    /// `L`
    List,
    /// `M`
    Map,
    /// `SS`
    StringSet,
    /// `NS`
    NumberSet,
    /// `BS`
    BinarySet,
}

impl AttributeType {
    fn code(self) -> &'static str {
        match self {
            AttributeType::String => "S",
            AttributeType::Number => "N",
            AttributeType::Binary => "B",
            AttributeType::Bool => "BOOL",
            AttributeType::Null => "NULL",
            AttributeType::List => "L",
            AttributeType::Map => "M",
            AttributeType::StringSet => "SS",
            AttributeType::NumberSet => "NS",
            AttributeType::BinarySet => "BS",
        }
    }
}

type Operand = Result<AttributeValue, ConvertError>;

#[derive(Clone, Debug)]
pub(crate) enum Node {
    Compare(Path, Cmp, Operand),
    Between(Path, Operand, Operand),
    BeginsWith(Path, Operand),
    Contains(Path, Operand),
    In(Path, Vec<Operand>),
    Exists(Path),
    NotExists(Path),
    Type(Path, AttributeType),
    Size(Path, Cmp, u64),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl<E> Condition<E> {
    pub(crate) fn from_node(node: Node) -> Self {
        Condition {
            node,
            _entity: PhantomData,
        }
    }

    /// Both conditions.
    pub fn and(self, other: Condition<E>) -> Self {
        Condition::from_node(match self.node {
            Node::And(mut all) => {
                all.push(other.node);
                Node::And(all)
            }
            node => Node::And(vec![node, other.node]),
        })
    }

    /// `condition`, ANDed with `existing` if there is one (how builders accumulate conditions).
    pub(crate) fn and_maybe(existing: Option<Condition<E>>, condition: Condition<E>) -> Self {
        match existing {
            Some(existing) => existing.and(condition),
            None => condition,
        }
    }

    /// Either condition.
    pub fn or(self, other: Condition<E>) -> Self {
        Condition::from_node(match self.node {
            Node::Or(mut any) => {
                any.push(other.node);
                Node::Or(any)
            }
            node => Node::Or(vec![node, other.node]),
        })
    }

    /// The negation.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        Condition::from_node(Node::Not(Box::new(self.node)))
    }
}

impl<E> Not for Condition<E> {
    type Output = Condition<E>;
    fn not(self) -> Self {
        Condition::not(self)
    }
}

impl Node {
    /// Renders the node at the end of `out`, registering names and values in `ph`.
    pub(crate) fn render(
        &self,
        ph: &mut Placeholders,
        out: &mut String,
    ) -> Result<(), (Path, ConvertError)> {
        let value = |ph: &mut Placeholders, out: &mut String, path: &Path, v: &Operand| match v {
            Ok(v) => {
                ph.push_value(out, v.clone());
                Ok(())
            }
            Err(e) => Err((path.clone(), e.clone())),
        };
        match self {
            Node::Compare(p, cmp, v) => {
                ph.push_path(out, p);
                out.push(' ');
                out.push_str(cmp.symbol());
                out.push(' ');
                value(ph, out, p, v)?;
            }
            Node::Between(p, lo, hi) => {
                ph.push_path(out, p);
                out.push_str(" BETWEEN ");
                value(ph, out, p, lo)?;
                out.push_str(" AND ");
                value(ph, out, p, hi)?;
            }
            Node::BeginsWith(p, v) | Node::Contains(p, v) => {
                out.push_str(match self {
                    Node::BeginsWith(..) => "begins_with(",
                    _ => "contains(",
                });
                ph.push_path(out, p);
                out.push_str(", ");
                value(ph, out, p, v)?;
                out.push(')');
            }
            Node::In(p, vs) => {
                ph.push_path(out, p);
                out.push_str(" IN (");
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    value(ph, out, p, v)?;
                }
                out.push(')');
            }
            Node::Exists(p) | Node::NotExists(p) => {
                out.push_str(match self {
                    Node::Exists(_) => "attribute_exists(",
                    _ => "attribute_not_exists(",
                });
                ph.push_path(out, p);
                out.push(')');
            }
            Node::Type(p, t) => {
                out.push_str("attribute_type(");
                ph.push_path(out, p);
                out.push_str(", ");
                ph.push_value(out, AttributeValue::S(t.code().into()));
                out.push(')');
            }
            Node::Size(p, cmp, n) => {
                out.push_str("size(");
                ph.push_path(out, p);
                out.push_str(") ");
                out.push_str(cmp.symbol());
                out.push(' ');
                ph.push_value(out, AttributeValue::N(n.to_string()));
            }
            Node::And(all) => join(ph, out, all, " AND ")?,
            Node::Or(any) => join(ph, out, any, " OR ")?,
            Node::Not(inner) => {
                out.push_str("NOT (");
                inner.render(ph, out)?;
                out.push(')');
            }
        }
        Ok(())
    }
}

/// A value as explain() shows it.
fn show(v: &Operand) -> String {
    match v {
        Ok(AttributeValue::S(s)) => format!("{s:?}"),
        Ok(AttributeValue::N(n)) => n.clone(),
        // Lossless: the text is also the query's fingerprint (cursors, cache keys).
        Ok(AttributeValue::B(b)) => {
            let hex: String = b
                .as_ref()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            format!("0x{hex}")
        }
        Ok(AttributeValue::Bool(b)) => b.to_string(),
        Ok(AttributeValue::Null(_)) => "null".to_owned(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("<invalid: {e}>"),
    }
}

impl Node {
    /// Readable form, with names and values inline (for explain and fingerprints).
    pub(crate) fn describe(&self) -> String {
        match self {
            Node::Compare(p, cmp, v) => format!("{p} {} {}", cmp.symbol(), show(v)),
            Node::Between(p, lo, hi) => format!("{p} BETWEEN {} AND {}", show(lo), show(hi)),
            Node::BeginsWith(p, v) => format!("begins_with({p}, {})", show(v)),
            Node::Contains(p, v) => format!("contains({p}, {})", show(v)),
            Node::In(p, vs) => format!(
                "{p} IN ({})",
                vs.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
            Node::Exists(p) => format!("attribute_exists({p})"),
            Node::NotExists(p) => format!("attribute_not_exists({p})"),
            Node::Type(p, t) => format!("attribute_type({p}, {})", t.code()),
            Node::Size(p, cmp, n) => format!("size({p}) {} {n}", cmp.symbol()),
            Node::And(all) => all
                .iter()
                .map(|n| format!("({})", n.describe()))
                .collect::<Vec<_>>()
                .join(" AND "),
            Node::Or(any) => any
                .iter()
                .map(|n| format!("({})", n.describe()))
                .collect::<Vec<_>>()
                .join(" OR "),
            Node::Not(inner) => format!("NOT ({})", inner.describe()),
        }
    }

    /// Every path the condition reads.
    pub(crate) fn paths(&self, out: &mut Vec<Path>) {
        match self {
            Node::Compare(p, ..)
            | Node::Between(p, ..)
            | Node::BeginsWith(p, _)
            | Node::Contains(p, _)
            | Node::In(p, _)
            | Node::Exists(p)
            | Node::NotExists(p)
            | Node::Type(p, _)
            | Node::Size(p, ..) => out.push(p.clone()),
            Node::And(all) | Node::Or(all) => all.iter().for_each(|n| n.paths(out)),
            Node::Not(inner) => inner.paths(out),
        }
    }

    /// The conjuncts of a condition: `a AND (b AND c)` -> `[a, b, c]`.
    pub(crate) fn flatten_and(self, out: &mut Vec<Node>) {
        match self {
            Node::And(all) => all.into_iter().for_each(|n| n.flatten_and(out)),
            other => out.push(other),
        }
    }
}

/// Renders `nodes`, each in parentheses, joined by `separator`.
fn join(
    ph: &mut Placeholders,
    out: &mut String,
    nodes: &[Node],
    separator: &str,
) -> Result<(), (Path, ConvertError)> {
    for (i, node) in nodes.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        out.push('(');
        node.render(ph, out)?;
        out.push(')');
    }
    Ok(())
}

impl<E, T> Attr<E, T> {
    fn compare<V: Value<T>>(&self, cmp: Cmp, v: V) -> Condition<E> {
        Condition::from_node(Node::Compare(self.path(), cmp, v.into_attribute_value()))
    }

    /// `attr = v`
    pub fn eq<V: Value<T>>(&self, v: V) -> Condition<E> {
        self.compare(Cmp::Eq, v)
    }
    /// `attr <> v`
    pub fn ne<V: Value<T>>(&self, v: V) -> Condition<E> {
        self.compare(Cmp::Ne, v)
    }
    /// `attr < v`
    pub fn lt<V: Value<T>>(&self, v: V) -> Condition<E> {
        self.compare(Cmp::Lt, v)
    }
    /// `attr <= v`
    pub fn le<V: Value<T>>(&self, v: V) -> Condition<E> {
        self.compare(Cmp::Le, v)
    }
    /// `attr > v`
    pub fn gt<V: Value<T>>(&self, v: V) -> Condition<E> {
        self.compare(Cmp::Gt, v)
    }
    /// `attr >= v`
    pub fn ge<V: Value<T>>(&self, v: V) -> Condition<E> {
        self.compare(Cmp::Ge, v)
    }
    /// `attr BETWEEN low AND high` (inclusive).
    pub fn between<V: Value<T>>(&self, low: V, high: V) -> Condition<E> {
        Condition::from_node(Node::Between(
            self.path(),
            low.into_attribute_value(),
            high.into_attribute_value(),
        ))
    }
    /// `begins_with(attr, prefix)`, for strings and binary.
    pub fn begins_with<V: Value<T>>(&self, prefix: V) -> Condition<E> {
        Condition::from_node(Node::BeginsWith(self.path(), prefix.into_attribute_value()))
    }
    /// `contains(attr, v)`: a substring of a string, or an element of a set or list.
    pub fn contains<V: ToAttributeValue>(&self, v: V) -> Condition<E> {
        Condition::from_node(Node::Contains(self.path(), v.to_attribute_value()))
    }
    /// `attr IN (v1, v2, ...)`.
    pub fn is_in<V: Value<T>>(&self, values: impl IntoIterator<Item = V>) -> Condition<E> {
        Condition::from_node(Node::In(
            self.path(),
            values
                .into_iter()
                .map(Value::into_attribute_value)
                .collect(),
        ))
    }
    /// `attribute_exists(attr)`
    pub fn exists(&self) -> Condition<E> {
        Condition::from_node(Node::Exists(self.path()))
    }
    /// `attribute_not_exists(attr)`
    pub fn not_exists(&self) -> Condition<E> {
        Condition::from_node(Node::NotExists(self.path()))
    }
    /// `attribute_type(attr, type)`
    pub fn is_type(&self, t: AttributeType) -> Condition<E> {
        Condition::from_node(Node::Type(self.path(), t))
    }
    /// Comparisons on `size(attr)`: string length, binary length, or number of elements.
    pub fn size(&self) -> SizeOf<E> {
        SizeOf {
            path: self.path(),
            _entity: PhantomData,
        }
    }
}

/// `size(attr)`, to compare: `User::TAGS.size().gt(3)`.
pub struct SizeOf<E> {
    path: Path,
    _entity: PhantomData<fn() -> E>,
}

impl<E> std::fmt::Debug for SizeOf<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SizeOf({})", self.path)
    }
}

impl<E> SizeOf<E> {
    fn cmp(self, cmp: Cmp, n: u64) -> Condition<E> {
        Condition::from_node(Node::Size(self.path, cmp, n))
    }
    /// `size(attr) = n`
    pub fn eq(self, n: u64) -> Condition<E> {
        self.cmp(Cmp::Eq, n)
    }
    /// `size(attr) <> n`
    pub fn ne(self, n: u64) -> Condition<E> {
        self.cmp(Cmp::Ne, n)
    }
    /// `size(attr) < n`
    pub fn lt(self, n: u64) -> Condition<E> {
        self.cmp(Cmp::Lt, n)
    }
    /// `size(attr) <= n`
    pub fn le(self, n: u64) -> Condition<E> {
        self.cmp(Cmp::Le, n)
    }
    /// `size(attr) > n`
    pub fn gt(self, n: u64) -> Condition<E> {
        self.cmp(Cmp::Gt, n)
    }
    /// `size(attr) >= n`
    pub fn ge(self, n: u64) -> Condition<E> {
        self.cmp(Cmp::Ge, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E;

    impl Condition<E> {
        fn render(&self, ph: &mut Placeholders) -> Result<String, (Path, ConvertError)> {
            let mut out = String::new();
            self.node.render(ph, &mut out)?;
            Ok(out)
        }
    }

    #[test]
    fn names_and_values_are_placeholders() {
        let weird: Attr<E, String> = Attr::named("a.b#c:d");
        let cond = weird
            .eq("x")
            .and(Attr::<E, i64>::named("size").gt(3))
            .or(!Attr::<E, i64>::named("n").exists());
        let mut ph = Placeholders::default();
        let expr = cond.render(&mut ph).unwrap();
        assert_eq!(
            expr,
            "((#n0 = :v0) AND (#n1 > :v1)) OR (NOT (attribute_exists(#n2)))"
        );
        let names = ph.names().unwrap();
        assert_eq!(names["#n0"], "a.b#c:d");
        assert_eq!(names["#n1"], "size");
    }

    #[test]
    fn nested_paths_render_each_segment() {
        let city: Attr<E, String> = Attr::<E, ()>::named("profile")
            .at::<()>("address")
            .at("city");
        let tag0: Attr<E, String> = Attr::<E, Vec<String>>::named("tags").item(0);
        let mut ph = Placeholders::default();
        let expr = city
            .begins_with("Ber")
            .and(tag0.eq("a"))
            .render(&mut ph)
            .unwrap();
        assert_eq!(expr, "(begins_with(#n0.#n1.#n2, :v0)) AND (#n3[0] = :v1)");
    }
}
