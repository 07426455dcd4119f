//! Label and field selectors, as the API server applies them to lists and watches.
//!
//! * [`LabelSelector`] mirrors `k8s.io/apimachinery/pkg/labels` (`Parse`, `Requirement`,
//!   `Selector.Matches`, `Selector.String`) and `metav1.LabelSelectorAsSelector`.
//! * [`FieldSelector`] mirrors `k8s.io/apimachinery/pkg/fields` (`ParseSelector`), with the
//!   per-kind field sets of kube-apiserver's registries (`pkg/registry/*/strategy.go`
//!   `ToSelectableFields`, and the field label conversion functions that reject unknown
//!   fields).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;

use super::validation::names::{is_qualified_name, is_valid_label_value};
use super::{Kind, Object};

/// Why a selector was rejected. The API server answers these with 400 Bad Request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector string or `metav1.LabelSelector` is malformed; the message is
    /// upstream's (`unable to parse requirement: …`, `found 'x', expected: …`).
    #[error("{0}")]
    Label(String),
    /// A field selector term has no operator (`invalid selector: 'a'; can't understand 'a'`).
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm { selector: String, term: String },
    /// A field selector value has a bad `\` escape (upstream's `InvalidEscapeSequence`).
    #[error("invalid field selector: invalid escape sequence: {0}")]
    FieldEscape(String),
    /// A field selector value has an unescaped `,` or `=` (upstream's `UnescapedRune`,
    /// which prints the code point as a number).
    #[error("invalid field selector: unescaped character in value: {}", *.0 as u32)]
    FieldUnescaped(char),
    /// A field the kind's registry does not index (`field label not supported: foo`).
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
    /// A field other than `metadata.name`/`metadata.namespace` on a kind with no custom
    /// field set (upstream's `DefaultMetaV1FieldSelectorConversion`).
    #[error(
        "\"{0}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    )]
    UnknownField(String),
}

// ---------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------

/// The operator of one label requirement (`selection.Operator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value`
    DoubleEquals,
    /// `key!=value`
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>1`
    GreaterThan,
    /// `key<1`
    LessThan,
}

/// One requirement of a label selector: a key, an operator and a (sorted) set of values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

impl Requirement {
    /// Build and validate a requirement. Mirrors `labels.NewRequirement`.
    pub fn new<I, S>(key: &str, operator: Operator, values: I) -> Result<Requirement, SelectorError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        let mut errs = Vec::new();
        let key_errs = is_qualified_name(key);
        if !key_errs.is_empty() {
            errs.push(format!(
                "key: Invalid value: {}: {}",
                go_quote(key),
                key_errs.join("; ")
            ));
        }
        let list = || {
            let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
            format!("[]string{{{}}}", quoted.join(", "))
        };
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
                list()
            )),
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                errs.push(format!(
                    "values: Invalid value: {}: exact-match compatibility requires one single value",
                    list()
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => errs.push(format!(
                "values: Invalid value: {}: values set must be empty for exists and does not exist",
                list()
            )),
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                        list()
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(format!(
                            "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                            go_quote(v)
                        ));
                    }
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            let v_errs = is_valid_label_value(v);
            if !v_errs.is_empty() {
                errs.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(v),
                    v_errs.join("; ")
                ));
            }
        }
        match errs.len() {
            0 => Ok(Requirement {
                key: key.to_string(),
                operator,
                values: values.into_iter().collect(),
            }),
            1 => Err(SelectorError::Label(errs.remove(0))),
            _ => Err(SelectorError::Label(format!("[{}]", errs.join(", ")))),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(String::as_str)
    }

    /// Whether a label set satisfies this requirement. Mirrors `Requirement.Matches`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(want) = self
                    .values
                    .iter()
                    .next()
                    .and_then(|v| v.parse::<i64>().ok())
                else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Mirrors `Requirement.String`: `a=b`, `a in (x,y)`, `!a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        f.write_str(op)?;
        let values: Vec<&str> = self.values().collect();
        if matches!(self.operator, Operator::In | Operator::NotIn) {
            write!(f, "({})", values.join(","))
        } else {
            f.write_str(&values.join(","))
        }
    }
}

/// A label selector: requirements that must all hold, sorted by key.
///
/// The empty selector matches everything. [`LabelSelector::nothing`] (what a missing
/// `metav1.LabelSelector` converts to) matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every label set (`labels.Everything`).
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// The selector that matches no label set (`labels.Nothing`).
    pub fn nothing() -> LabelSelector {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Build from requirements (sorted by key, as `Selector.Add`).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> LabelSelector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// Parse a selector string (`app=web,tier in (a,b),!canary`). Mirrors `labels.Parse`.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let requirements = Parser::new(s).parse().map_err(SelectorError::Label)?;
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// Convert an API selector. Mirrors `metav1.LabelSelectorAsSelector`: no match labels and
    /// no expressions is [`LabelSelector::everything`].
    pub fn from_api(selector: &metav1::LabelSelector) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::new(k, Operator::Equals, [v.as_str()])?);
        }
        for expr in selector.match_expressions.iter().flatten() {
            let op = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::Label(format!(
                        "{} is not a valid label selector operator",
                        go_quote(other)
                    )))
                }
            };
            let values = expr.values.clone().unwrap_or_default();
            requirements.push(Requirement::new(&expr.key, op, values)?);
        }
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// Convert an optional API selector: `None` matches nothing, as upstream.
    pub fn from_api_opt(
        selector: Option<&metav1::LabelSelector>,
    ) -> Result<LabelSelector, SelectorError> {
        match selector {
            None => Ok(LabelSelector::nothing()),
            Some(s) => LabelSelector::from_api(s),
        }
    }

    /// Whether this selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// [`LabelSelector::matches`] on an object's optional labels.
    pub fn matches_opt(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.matches(labels.unwrap_or(&EMPTY))
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string (`Selector.String`): requirements sorted by key, joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LabelSelector::parse(s)
    }
}

/// Lexer tokens (`labels.Token`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    End,
    Identifier(String),
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
    NotEquals,
    OpenPar,
}

impl Token {
    fn literal(&self) -> &str {
        match self {
            Token::End => "",
            Token::Identifier(s) => s,
            Token::ClosedPar => ")",
            Token::Comma => ",",
            Token::DoesNotExist => "!",
            Token::DoubleEquals => "==",
            Token::Equals => "=",
            Token::GreaterThan => ">",
            Token::LessThan => "<",
            Token::In => "in",
            Token::NotIn => "notin",
            Token::NotEquals => "!=",
            Token::OpenPar => "(",
        }
    }

    /// In value position the keywords `in` and `notin` are plain identifiers.
    fn into_value(self) -> Token {
        match self {
            Token::In => Token::Identifier("in".into()),
            Token::NotIn => Token::Identifier("notin".into()),
            t => t,
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(s: &str) -> Vec<Token> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (tok, len) = match (c, next) {
                ('=', Some('=')) => (Token::DoubleEquals, 2),
                ('!', Some('=')) => (Token::NotEquals, 2),
                ('=', _) => (Token::Equals, 1),
                ('!', _) => (Token::DoesNotExist, 1),
                ('(', _) => (Token::OpenPar, 1),
                (')', _) => (Token::ClosedPar, 1),
                (',', _) => (Token::Comma, 1),
                ('>', _) => (Token::GreaterThan, 1),
                _ => (Token::LessThan, 1),
            };
            out.push(tok);
            i += len;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(match word.as_str() {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier(word),
            });
        }
    }
    out
}

/// The recursive-descent parser of `labels.Parser`, with upstream's error messages.
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn new(s: &str) -> Parser {
        Parser {
            tokens: lex(s),
            pos: 0,
        }
    }

    fn lookahead(&self) -> Token {
        self.tokens
            .get(self.pos)
            .cloned()
            .unwrap_or(Token::End)
            .into_value()
    }

    fn consume_raw(&mut self) -> Token {
        let t = self.tokens.get(self.pos).cloned().unwrap_or(Token::End);
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn consume(&mut self) -> Token {
        self.consume_raw().into_value()
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut out = Vec::new();
        loop {
            match self.lookahead() {
                Token::Identifier(_) | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    out.push(r);
                    match self.consume() {
                        Token::End => return Ok(out),
                        Token::Comma => {
                            let t = self.lookahead();
                            if !matches!(t, Token::Identifier(_) | Token::DoesNotExist) {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.literal()
                                ));
                            }
                        }
                        t => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.literal()
                            ))
                        }
                    }
                }
                Token::End => return Ok(out),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op) = op {
            return Requirement::new(&key, op, Vec::<String>::new()).map_err(|e| e.to_string());
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, op, values).map_err(|e| e.to_string())
    }

    /// The key, and `Exists`/`DoesNotExist` when no binary operator follows.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut tok = self.consume();
        let mut op = None;
        if tok == Token::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            tok = self.consume();
        }
        let Token::Identifier(key) = tok else {
            return Err(format!("found '{}', expected: identifier", tok.literal()));
        };
        let errs = is_qualified_name(&key);
        if !errs.is_empty() {
            return Err(format!(
                "key: Invalid value: {}: {}",
                go_quote(&key),
                errs.join("; ")
            ));
        }
        if op.is_none() && matches!(self.lookahead(), Token::End | Token::Comma) {
            op = Some(Operator::Exists);
        }
        Ok((key, op))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        Ok(match self.consume_raw() {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            t => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.literal()
                ))
            }
        })
    }

    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let t = self.consume();
        if t != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", t.literal()));
        }
        match self.lookahead() {
            Token::Identifier(_) | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let t = self.consume();
                if t != Token::ClosedPar {
                    return Err(format!("found '{}', expected: ')'", t.literal()));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume();
                Ok(vec![String::new()])
            }
            t => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                t.literal()
            )),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            match self.consume() {
                Token::Identifier(v) => {
                    values.push(v);
                    match self.lookahead() {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Token::Comma => {
                    // `(,a)`, `(a,)` and `(a,,b)` all include the empty value.
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.lookahead() {
                        Token::ClosedPar => {
                            values.push(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.consume();
                            values.push(String::new());
                        }
                        _ => {}
                    }
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        t.literal()
                    ))
                }
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        if matches!(self.lookahead(), Token::End | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.consume() {
            Token::Identifier(v) => Ok(vec![v]),
            t => Err(format!("found '{}', expected: identifier", t.literal())),
        }
    }
}

/// Go's `%q` for a string: double-quoted with `"`, `\` and control characters escaped.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------

/// One term of a field selector: `field=value` or `field!=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    /// `true` for `=`/`==`, `false` for `!=`.
    pub equal: bool,
    pub value: String,
}

/// A field selector: terms that must all hold. The empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches everything.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parse `a=b,c!=d` without checking fields against a kind. Mirrors
    /// `fields.ParseSelector` (`==` is the same as `=`; `\,` `\=` `\\` escape values).
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for part in split_unescaped(s, ',') {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(SelectorError::FieldTerm {
                    selector: s.to_string(),
                    term: part.to_string(),
                });
            };
            terms.push(FieldRequirement {
                field: lhs.to_string(),
                equal: op != "!=",
                value: unescape_value(rhs)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Parse and check every field against what `kind`'s registry supports, converting
    /// legacy names (pods' `spec.host` → `spec.nodeName`).
    pub fn parse_for(kind: Kind, s: &str) -> Result<FieldSelector, SelectorError> {
        let mut sel = FieldSelector::parse(s)?;
        for t in &mut sel.terms {
            t.field = convert_field_label(kind, &t.field)?.to_string();
        }
        Ok(sel)
    }

    /// Check every field against what `kind` supports.
    pub fn check_kind(&self, kind: Kind) -> Result<(), SelectorError> {
        for t in &self.terms {
            convert_field_label(kind, &t.field)?;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn terms(&self) -> &[FieldRequirement] {
        &self.terms
    }

    /// The value `field` must equal, if the selector has a `field=value` term. The API server
    /// routes watches with it (`spec.nodeName` for kubelets, `metadata.name` for single-object
    /// watches).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.equal && t.field == field)
            .map(|t| t.value.as_str())
    }

    /// Whether the object satisfies every term. A field the kind does not have reads as the
    /// empty string, as in upstream's `fields.Set`.
    pub fn matches(&self, obj: &Object) -> bool {
        self.terms.iter().all(|t| {
            let have = field_value(obj, &t.field).unwrap_or_default();
            (*have == *t.value) == t.equal
        })
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical string: terms joined by `,`, `==` printed as `=`, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.equal { "=" } else { "!=" };
            write!(f, "{}{}{}", t.field, op, escape_value(&t.value))?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

/// Split on `sep` not preceded by an escaping backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// Split a term at its first unescaped operator, trying `!=`, `==`, `=` at each position.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if rest.starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => return Err(SelectorError::FieldEscape(format!("\\{e}"))),
                None => return Err(SelectorError::FieldEscape("\\".to_string())),
            }
        } else if c == ',' || c == '=' {
            return Err(SelectorError::FieldUnescaped(c));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

/// The fields a kind's field selectors may use, beyond legacy aliases.
pub fn supported_fields(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Pod => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        Kind::Event => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        // Cluster-scoped kinds: upstream's conversion functions do not accept
        // `metadata.namespace` for them.
        Kind::Node => &["metadata.name", "spec.unschedulable"],
        Kind::Namespace => &["metadata.name", "status.phase"],
        Kind::ReplicaSet => &["metadata.name", "metadata.namespace", "status.replicas"],
        Kind::Deployment | Kind::Lease => &["metadata.name", "metadata.namespace"],
    }
}

/// Check (and convert) one field label for a kind. Mirrors the field label conversion
/// functions registered in `pkg/apis/*/v1/conversion.go`.
fn convert_field_label(kind: Kind, field: &str) -> Result<&'static str, SelectorError> {
    if kind == Kind::Pod && field == "spec.host" {
        return Ok("spec.nodeName");
    }
    match supported_fields(kind).iter().find(|f| **f == field) {
        Some(f) => Ok(f),
        None if matches!(kind, Kind::Deployment | Kind::Lease) => {
            Err(SelectorError::UnknownField(field.to_string()))
        }
        None => Err(SelectorError::UnsupportedField(field.to_string())),
    }
}

/// The value of a selectable field of an object (`ToSelectableFields` in the kind's
/// registry strategy), or `None` if the kind has no such field.
pub fn field_value<'a>(obj: &'a Object, field: &str) -> Option<Cow<'a, str>> {
    // Borrowed where the field is a string: watch dispatch evaluates this for every watcher
    // of every change, so it must not allocate.
    fn s(v: Option<&String>) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(v.map_or("", String::as_str)))
    }
    fn flag(b: bool) -> Option<Cow<'static, str>> {
        Some(Cow::Borrowed(if b { "true" } else { "false" }))
    }
    let meta = obj.meta();
    match field {
        "metadata.name" => return s(meta.name.as_ref()),
        "metadata.namespace" if obj.kind().namespaced() => return s(meta.namespace.as_ref()),
        _ => {}
    }
    match obj {
        Object::Pod(p) => {
            let spec = p.spec.as_ref();
            let status = p.status.as_ref();
            match field {
                "spec.nodeName" | "spec.host" => s(spec.and_then(|s| s.node_name.as_ref())),
                "spec.restartPolicy" => s(spec.and_then(|s| s.restart_policy.as_ref())),
                "spec.schedulerName" => s(spec.and_then(|s| s.scheduler_name.as_ref())),
                "spec.serviceAccountName" => s(spec.and_then(|s| s.service_account_name.as_ref())),
                "spec.hostNetwork" => flag(spec.and_then(|s| s.host_network).unwrap_or(false)),
                "status.phase" => s(status.and_then(|s| s.phase.as_ref())),
                "status.podIP" => {
                    let first = status
                        .and_then(|s| s.pod_ips.as_ref())
                        .and_then(|ips| ips.first())
                        .map(|ip| &ip.ip);
                    s(first.or_else(|| status.and_then(|s| s.pod_ip.as_ref())))
                }
                "status.nominatedNodeName" => {
                    s(status.and_then(|s| s.nominated_node_name.as_ref()))
                }
                _ => None,
            }
        }
        Object::Event(e) => {
            let io = &e.involved_object;
            match field {
                "involvedObject.kind" => s(io.kind.as_ref()),
                "involvedObject.namespace" => s(io.namespace.as_ref()),
                "involvedObject.name" => s(io.name.as_ref()),
                "involvedObject.uid" => s(io.uid.as_ref()),
                "involvedObject.apiVersion" => s(io.api_version.as_ref()),
                "involvedObject.resourceVersion" => s(io.resource_version.as_ref()),
                "involvedObject.fieldPath" => s(io.field_path.as_ref()),
                "reason" => s(e.reason.as_ref()),
                "reportingComponent" => s(e.reporting_component.as_ref()),
                "source" => {
                    let component = e.source.as_ref().and_then(|s| s.component.as_ref());
                    match component.filter(|c| !c.is_empty()) {
                        Some(c) => s(Some(c)),
                        None => s(e.reporting_component.as_ref()),
                    }
                }
                "type" => s(e.type_.as_ref()),
                _ => None,
            }
        }
        Object::Node(n) => match field {
            "spec.unschedulable" => flag(
                n.spec
                    .as_ref()
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false),
            ),
            _ => None,
        },
        Object::Namespace(ns) => match field {
            "status.phase" => s(ns.status.as_ref().and_then(|s| s.phase.as_ref())),
            _ => None,
        },
        Object::ReplicaSet(rs) => match field {
            "status.replicas" => Some(Cow::Owned(
                rs.status
                    .as_ref()
                    .map(|s| s.replicas)
                    .unwrap_or(0)
                    .to_string(),
            )),
            _ => None,
        },
        Object::Deployment(_) | Object::Lease(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Event, Namespace, NamespaceStatus, Node, NodeSpec, ObjectReference, Pod, PodSpec, PodStatus,
    };
    use metav1::{LabelSelectorRequirement, ObjectMeta};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Parsing: each string's canonical form.
    #[test]
    fn label_selector_parses_to_canonical_string() {
        let cases = [
            ("", ""),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x!=a", "x!=a"),
            (" x = a , y != b ", "x=a,y!=b"),
            ("y=b,x=a", "x=a,y=b"),
            ("x", "x"),
            ("!x", "!x"),
            ("x in (b,a)", "x in (a,b)"),
            ("x in(a)", "x in (a)"),
            ("x notin (a, b)", "x notin (a,b)"),
            ("x in (a,)", "x in (,a)"),
            ("x in ()", "x in ()"),
            ("x>1", "x>1"),
            ("x<2", "x<2"),
            ("x=", "x="),
            ("in=notin", "in=notin"),
            ("example.com/app=web", "example.com/app=web"),
        ];
        for (input, canonical) in cases {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.to_string(), canonical, "{input}");
        }
    }

    /// Malformed selectors: upstream's messages.
    #[test]
    fn label_selector_parse_errors() {
        let cases = [
            ("x=a,", "found '', expected: identifier after ','"),
            ("=a", "found '=', expected: !, identifier, or 'end of string'"),
            ("x=a b", "found 'b', expected: ',' or 'end of string'"),
            ("x in a", "unable to parse requirement: found 'a' expected: '('"),
            ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
            ("x==(a)", "unable to parse requirement: found '(', expected: identifier"),
            ("x ~ a", "unable to parse requirement: found '~', expected: in, notin, =, ==, !=, gt, lt"),
            ("x a", "unable to parse requirement: found 'a', expected: in, notin, =, ==, !=, gt, lt"),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            ("x>a", "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"),
        ];
        for (input, msg) in cases {
            let err = LabelSelector::parse(input).unwrap_err();
            assert_eq!(err.to_string(), msg, "{input}");
        }
        let err = LabelSelector::parse("a b=c").unwrap_err().to_string();
        assert!(err.starts_with("unable to parse requirement"), "{err}");
        let err = LabelSelector::parse("x=a b c").unwrap_err().to_string();
        assert!(err.starts_with("found 'b'"), "{err}");
        let err = LabelSelector::parse("-x=a").unwrap_err().to_string();
        assert!(
            err.contains("key: Invalid value: \"-x\": name part must consist of"),
            "{err}"
        );
        let err = LabelSelector::parse("x=-a").unwrap_err().to_string();
        assert!(err.contains("values[0][x]: Invalid value: \"-a\""), "{err}");
    }

    /// Matching: each operator on present, absent and different values.
    #[test]
    fn label_selector_matches() {
        let set = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("missing in (x)", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("app>1", false),
            ("missing=", false),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap();
            assert_eq!(sel.matches(&set), want, "{input}");
        }
        assert!(LabelSelector::everything().is_empty());
        assert!(!LabelSelector::nothing().is_empty());
        assert!(!LabelSelector::nothing().matches(&set));
        assert!(LabelSelector::everything().matches_opt(None));
    }

    /// metav1.LabelSelector conversion: labels and expressions, and the invalid operator.
    #[test]
    fn label_selector_from_api() {
        let api = metav1::LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["b".into(), "a".into()]),
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let sel = LabelSelector::from_api(&api).unwrap();
        assert_eq!(sel.to_string(), "app=web,!canary,tier in (a,b)");
        assert_eq!(sel.requirements().len(), 3);
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "a")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "a"), ("canary", "y")])));
        assert!(LabelSelector::from_api(&metav1::LabelSelector::default())
            .unwrap()
            .is_empty());

        let bad = metav1::LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Equals".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(
            LabelSelector::from_api(&bad).unwrap_err().to_string(),
            "\"Equals\" is not a valid label selector operator"
        );
        let empty_in = metav1::LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "In".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(
            LabelSelector::from_api(&empty_in).unwrap_err().to_string(),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
    }

    /// Requirements print sorted by key whatever their source order.
    #[test]
    fn label_selector_string_is_sorted_by_key() {
        let api = metav1::LabelSelector {
            match_labels: Some(labels(&[("z", "1"), ("a", "2")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "m".into(),
                operator: "Exists".into(),
                values: None,
            }]),
        };
        assert_eq!(
            LabelSelector::from_api(&api).unwrap().to_string(),
            "a=2,m,z=1"
        );
    }

    fn pod(name: &str, node: Option<&str>, phase: &str) -> Object {
        Object::from(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        })
    }

    /// Field selector parsing: operators, escapes, the canonical form and term errors.
    #[test]
    fn field_selector_parses() {
        let cases = [
            ("", ""),
            ("a=b", "a=b"),
            ("a==b", "a=b"),
            ("a!=b", "a!=b"),
            ("a=b,c!=d", "a=b,c!=d"),
            ("a=", "a="),
            ("a=x\\,y", "a=x\\,y"),
            ("a=b,", "a=b"),
        ];
        for (input, canonical) in cases {
            let sel = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.to_string(), canonical, "{input}");
        }
        assert_eq!(
            FieldSelector::parse("a=x\\,y").unwrap().exact("a"),
            Some("x,y")
        );
        assert_eq!(
            FieldSelector::parse("a=b,c").unwrap_err().to_string(),
            "invalid selector: 'a=b,c'; can't understand 'c'"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err(),
            SelectorError::FieldUnescaped('=')
        );
    }

    /// Fields must be ones the kind supports.
    #[test]
    fn field_selector_checks_fields_per_kind() {
        let ok = [
            (Kind::Pod, "spec.nodeName=n1,status.phase!=Running"),
            (Kind::Pod, "metadata.namespace=default"),
            (
                Kind::Event,
                "involvedObject.name=web,reason=Scheduled,type=Normal",
            ),
            (Kind::Node, "spec.unschedulable=false"),
            (Kind::ReplicaSet, "status.replicas=0"),
            (Kind::Namespace, "status.phase=Active"),
            (Kind::Deployment, "metadata.name=web"),
        ];
        for (kind, s) in ok {
            FieldSelector::parse_for(kind, s).unwrap_or_else(|e| panic!("{kind} {s}: {e}"));
        }
        assert_eq!(
            FieldSelector::parse_for(Kind::Pod, "foo=bar")
                .unwrap_err()
                .to_string(),
            "field label not supported: foo"
        );
        assert_eq!(
            FieldSelector::parse_for(Kind::Node, "metadata.namespace=x")
                .unwrap_err()
                .to_string(),
            "field label not supported: metadata.namespace"
        );
        assert_eq!(
            FieldSelector::parse_for(Kind::Deployment, "spec.replicas=1").unwrap_err().to_string(),
            "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        let legacy = FieldSelector::parse_for(Kind::Pod, "spec.host=n1").unwrap();
        assert_eq!(legacy.exact("spec.nodeName"), Some("n1"));
    }

    /// Matching reads the per-kind fields; absent fields are the empty string.
    #[test]
    fn field_selector_matches_objects() {
        let bound = pod("web", Some("n1"), "Running");
        let pending = pod("db", None, "Pending");
        let cases = [
            ("spec.nodeName=n1", true, false),
            ("spec.nodeName=", false, true),
            ("spec.nodeName!=", true, false),
            ("status.phase!=Running", false, true),
            ("metadata.name=web", true, false),
            ("metadata.namespace=default,metadata.name=db", false, true),
            ("spec.schedulerName=", true, true),
            ("spec.hostNetwork=false", true, true),
        ];
        for (s, want_bound, want_pending) in cases {
            let sel = FieldSelector::parse_for(Kind::Pod, s).unwrap();
            assert_eq!(sel.matches(&bound), want_bound, "{s} on bound pod");
            assert_eq!(sel.matches(&pending), want_pending, "{s} on pending pod");
        }

        let event = Object::from(Event {
            metadata: ObjectMeta {
                name: Some("e1".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                ..Default::default()
            },
            reason: Some("Scheduled".into()),
            reporting_component: Some("default-scheduler".into()),
            ..Default::default()
        });
        for s in [
            "involvedObject.kind=Pod",
            "involvedObject.name=web",
            "source=default-scheduler",
            "reason=Scheduled",
            "involvedObject.uid=",
        ] {
            assert!(
                FieldSelector::parse_for(Kind::Event, s)
                    .unwrap()
                    .matches(&event),
                "{s}"
            );
        }

        let node = Object::from(Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                unschedulable: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(FieldSelector::parse("spec.unschedulable=true")
            .unwrap()
            .matches(&node));
        let ns = Object::from(Namespace {
            metadata: ObjectMeta {
                name: Some("default".into()),
                ..Default::default()
            },
            status: Some(NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert!(FieldSelector::parse("status.phase=Active")
            .unwrap()
            .matches(&ns));
    }

    /// `exact` finds `=` terms only.
    #[test]
    fn field_selector_exact() {
        let sel = FieldSelector::parse("spec.nodeName=n1,metadata.name!=x").unwrap();
        assert_eq!(sel.exact("spec.nodeName"), Some("n1"));
        assert_eq!(sel.exact("metadata.name"), None);
        assert_eq!(sel.exact("status.phase"), None);
        assert!(FieldSelector::everything().is_empty());
    }
}
