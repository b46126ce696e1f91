//! opam's file format and the `opam-switch` file (`opam switch export --full --freeze`).

mod print;
mod switch;
mod syntax;

pub use print::{render_file, render_normalised, render_value, render_values, value_to_string};
pub use switch::{
    Dependency, DuniverseDir, ExtraFile, FrontPageSection, OpamPackage, PackageAtom, SwitchExport,
    parse_switch_export,
};
pub use syntax::{parse_opam_file, parse_opam_value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpamError {
    #[error("opam file is not valid UTF-8")]
    NotUtf8,
    #[error("opam syntax error at line {line}, column {column}: {message}")]
    Syntax { line: usize, column: usize, message: String },
    /// Well-formed syntax, but a field does not have the shape the switch export needs.
    #[error("opam field {field}: {message}")]
    Field { field: String, message: String },
}

impl OpamError {
    fn field(field: &str, message: impl Into<String>) -> Self {
        OpamError::Field { field: field.to_owned(), message: message.into() }
    }
}

/// A parsed opam file: fields and sections in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpamFile {
    pub items: Vec<Item>,
}

impl OpamFile {
    /// The first top-level field of that name.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.items.iter().find_map(|item| match item {
            Item::Field { name: n, value } if n == name => Some(value),
            _ => None,
        })
    }

    /// A string field's value.
    pub fn string_field(&self, name: &str) -> Option<&str> {
        match self.field(name) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `name: value`
    Field { name: String, value: Value },
    /// `kind "name" { items }` (the name is optional, e.g. `url { ... }`).
    Section { kind: String, name: Option<String>, items: Vec<Item> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    String(String),
    /// An identifier or variable: `build`, `ocaml:version`, `with-test`, `_:doc`.
    Ident(String),
    /// `atom op atom`, e.g. `os = "linux"`.
    Relop(RelOp, Box<Value>, Box<Value>),
    /// `op atom`, a version constraint such as `>= "4.08"`.
    PrefixRelop(RelOp, Box<Value>),
    Logop(LogOp, Box<Value>, Box<Value>),
    /// `!value` or `?value`.
    Pfxop(PfxOp, Box<Value>),
    /// `VAR += "value"` in `setenv:`/`build-env:`.
    EnvBinding(Box<Value>, EnvOp, Box<Value>),
    /// `[ values ]`
    List(Vec<Value>),
    /// `( values )`
    Group(Vec<Value>),
    /// `value { values }`: a filter or constraint attached to a value.
    Option(Box<Value>, Vec<Value>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelOp {
    Eq,
    Neq,
    Lt,
    Leq,
    Gt,
    /// `>=`; opam reads the legacy `~` as this too.
    Geq,
}

impl RelOp {
    pub fn as_str(self) -> &'static str {
        match self {
            RelOp::Eq => "=",
            RelOp::Neq => "!=",
            RelOp::Lt => "<",
            RelOp::Leq => "<=",
            RelOp::Gt => ">",
            RelOp::Geq => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogOp {
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfxOp {
    /// `!`
    Not,
    /// `?` (is defined)
    Defined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Environment update operators. A plain `VAR = "value"` parses as [`Value::Relop`] with
/// [`RelOp::Eq`], as in opam's own parser.
pub enum EnvOp {
    PlusEq,
    EqPlus,
    EqPlusEq,
    ColonEq,
    EqColon,
}

impl EnvOp {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvOp::PlusEq => "+=",
            EnvOp::EqPlus => "=+",
            EnvOp::EqPlusEq => "=+=",
            EnvOp::ColonEq => ":=",
            EnvOp::EqColon => "=:",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
