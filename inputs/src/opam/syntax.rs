//! Lexer and parser of opam's file format (opam-file-format 2.1 grammar).
//!
//! Faithful to the reference lexer in what it accepts (identifier shape, the three string escape
//! forms, nested `(* *)` comments, operator tokens) and to the grammar's precedences:
//! `|` < `&` < env-update ops < `!`/`?` < `{...}` options < relational ops. Relational and
//! env-update operators take atoms on both sides, as in the reference grammar.

use super::{EnvOp, Item, LogOp, OpamError, OpamFile, PfxOp, RelOp, Value};

/// Nesting bound: keeps recursion (parse, render, drop) far from the stack limit on hostile input,
/// even in unoptimised builds on a 2 MiB thread stack. Real opam files nest less than ten deep.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Colon,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    LParen,
    RParen,
    String(String),
    Bool(bool),
    Int(i64),
    Ident(String),
    Relop(RelOp),
    And,
    Or,
    Pfxop(PfxOp),
    Envop(EnvOp),
    Eof,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Colon => "':'".into(),
            Token::LBrace => "'{'".into(),
            Token::RBrace => "'}'".into(),
            Token::LBracket => "'['".into(),
            Token::RBracket => "']'".into(),
            Token::LParen => "'('".into(),
            Token::RParen => "')'".into(),
            Token::String(_) => "a string".into(),
            Token::Bool(_) => "a boolean".into(),
            Token::Int(_) => "an integer".into(),
            Token::Ident(i) => format!("identifier {i:?}"),
            Token::Relop(_) => "a comparison operator".into(),
            Token::And => "'&'".into(),
            Token::Or => "'|'".into(),
            Token::Pfxop(_) => "a prefix operator".into(),
            Token::Envop(_) => "an environment update operator".into(),
            Token::Eof => "end of file".into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pos {
    line: usize,
    column: usize,
}

struct Lexer<'a> {
    src: &'a [u8],
    at: usize,
    line: usize,
    line_start: usize,
}

fn is_alpha(b: u8) -> bool {
    b.is_ascii_alphabetic()
}

fn is_ichar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer { src: src.as_bytes(), at: 0, line: 1, line_start: 0 }
    }

    fn pos(&self) -> Pos {
        Pos { line: self.line, column: self.at - self.line_start + 1 }
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.src.get(at).copied()
    }

    fn error<T>(&self, pos: Pos, message: impl Into<String>) -> Result<T, OpamError> {
        Err(OpamError::Syntax { line: pos.line, column: pos.column, message: message.into() })
    }

    fn newline(&mut self) {
        self.line += 1;
        self.line_start = self.at;
    }

    /// `id = ichar* alpha ichar*`: the whole run of identifier characters, if it has a letter.
    fn match_id(&self, from: usize) -> Option<usize> {
        let mut end = from;
        let mut alpha = false;
        while let Some(b) = self.byte(end).filter(|&b| is_ichar(b)) {
            alpha |= is_alpha(b);
            end += 1;
        }
        alpha.then_some(end)
    }

    fn match_id_or_underscore(&self, from: usize) -> Option<usize> {
        self.match_id(from).or_else(|| (self.byte(from) == Some(b'_')).then_some(from + 1))
    }

    /// `ident = (id | '_') ('+' (id | '_'))* (':' id)?`
    fn match_ident(&self, from: usize) -> Option<usize> {
        let mut end = self.match_id_or_underscore(from)?;
        while self.byte(end) == Some(b'+') {
            match self.match_id_or_underscore(end + 1) {
                Some(next) => end = next,
                None => break,
            }
        }
        if self.byte(end) == Some(b':')
            && let Some(next) = self.match_id(end + 1)
        {
            end = next;
        }
        Some(end)
    }

    /// `int = '-'? ['0'-'9' '_']+`, with at least one digit.
    fn match_int(&self, from: usize) -> Option<usize> {
        let mut end = from;
        if self.byte(end) == Some(b'-') {
            end += 1;
        }
        let digits_from = end;
        let mut digit = false;
        while let Some(b) = self.byte(end).filter(|b| b.is_ascii_digit() || *b == b'_') {
            digit |= b.is_ascii_digit();
            end += 1;
        }
        (end > digits_from && digit).then_some(end)
    }

    fn skip_blanks(&mut self) -> Result<(), OpamError> {
        loop {
            match self.byte(self.at) {
                Some(b' ' | b'\t' | b'\r') => self.at += 1,
                Some(b'\n') => {
                    self.at += 1;
                    self.newline();
                }
                Some(b'#') => {
                    while let Some(b) = self.byte(self.at) {
                        if b == b'\n' {
                            break;
                        }
                        self.at += 1;
                    }
                }
                Some(b'(') if self.byte(self.at + 1) == Some(b'*') => {
                    let start = self.pos();
                    self.at += 2;
                    let mut depth = 1usize;
                    while depth > 0 {
                        match self.byte(self.at) {
                            None => return self.error(start, "unterminated comment"),
                            Some(b'*') if self.byte(self.at + 1) == Some(b')') => {
                                depth -= 1;
                                self.at += 2;
                            }
                            Some(b'(') if self.byte(self.at + 1) == Some(b'*') => {
                                depth += 1;
                                self.at += 2;
                            }
                            Some(b'\n') => {
                                self.at += 1;
                                self.newline();
                            }
                            Some(_) => self.at += 1,
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next(&mut self) -> Result<(Token, Pos), OpamError> {
        self.skip_blanks()?;
        let pos = self.pos();
        let Some(b) = self.byte(self.at) else { return Ok((Token::Eof, pos)) };
        let next = self.byte(self.at + 1);
        let (token, len) = match b {
            b'{' => (Token::LBrace, 1),
            b'}' => (Token::RBrace, 1),
            b'[' => (Token::LBracket, 1),
            b']' => (Token::RBracket, 1),
            b'(' => (Token::LParen, 1),
            b')' => (Token::RParen, 1),
            b'&' => (Token::And, 1),
            b'|' => (Token::Or, 1),
            b'?' => (Token::Pfxop(PfxOp::Defined), 1),
            b'~' => (Token::Relop(RelOp::Geq), 1),
            b':' if next == Some(b'=') => (Token::Envop(EnvOp::ColonEq), 2),
            b':' => (Token::Colon, 1),
            b'+' if next == Some(b'=') => (Token::Envop(EnvOp::PlusEq), 2),
            b'=' if next == Some(b'+') && self.byte(self.at + 2) == Some(b'=') => {
                (Token::Envop(EnvOp::EqPlusEq), 3)
            }
            b'=' if next == Some(b'+') => (Token::Envop(EnvOp::EqPlus), 2),
            b'=' if next == Some(b':') => (Token::Envop(EnvOp::EqColon), 2),
            b'=' => (Token::Relop(RelOp::Eq), 1),
            b'!' if next == Some(b'=') => (Token::Relop(RelOp::Neq), 2),
            b'!' => (Token::Pfxop(PfxOp::Not), 1),
            b'<' if next == Some(b'=') => (Token::Relop(RelOp::Leq), 2),
            b'<' => (Token::Relop(RelOp::Lt), 1),
            b'>' if next == Some(b'=') => (Token::Relop(RelOp::Geq), 2),
            b'>' => (Token::Relop(RelOp::Gt), 1),
            b'"' => return Ok((Token::String(self.string(pos)?), pos)),
            _ => return self.word(pos),
        };
        self.at += len;
        Ok((token, pos))
    }

    fn word(&mut self, pos: Pos) -> Result<(Token, Pos), OpamError> {
        let ident = self.match_ident(self.at);
        let int = self.match_int(self.at);
        // Longest match, the integer rule winning ties (it comes first in the reference lexer).
        match (int, ident) {
            (Some(end), ident) if ident.is_none_or(|i| end >= i) => {
                let text: String = self.slice(self.at, end).chars().filter(|c| *c != '_').collect();
                let Ok(value) = text.parse::<i64>() else {
                    return self.error(pos, format!("integer out of range: {text}"));
                };
                self.at = end;
                Ok((Token::Int(value), pos))
            }
            (_, Some(end)) => {
                let text = self.slice(self.at, end).to_owned();
                self.at = end;
                let token = match text.as_str() {
                    "true" => Token::Bool(true),
                    "false" => Token::Bool(false),
                    _ => Token::Ident(text),
                };
                Ok((token, pos))
            }
            _ => {
                let shown = std::str::from_utf8(&self.src[self.at..])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .unwrap_or('?');
                self.error(pos, format!("{shown:?} is not a valid token"))
            }
        }
    }

    fn slice(&self, from: usize, to: usize) -> &str {
        // Only called on ASCII ranges found by the matchers above.
        std::str::from_utf8(&self.src[from..to]).unwrap_or_default()
    }

    /// A `"..."` or `"""..."""` string, the opening quote at `self.at`.
    fn string(&mut self, pos: Pos) -> Result<String, OpamError> {
        let triple = self.byte(self.at + 1) == Some(b'"') && self.byte(self.at + 2) == Some(b'"');
        self.at += if triple { 3 } else { 1 };
        let mut out = Vec::new();
        loop {
            let Some(b) = self.byte(self.at) else { return self.error(pos, "unterminated string") };
            match b {
                b'"' if !triple => {
                    self.at += 1;
                    break;
                }
                b'"' if self.byte(self.at + 1) == Some(b'"') && self.byte(self.at + 2) == Some(b'"') => {
                    self.at += 3;
                    break;
                }
                b'\n' => {
                    out.push(b);
                    self.at += 1;
                    self.newline();
                }
                b'\\' => {
                    self.at += 1;
                    self.escape(&mut out)?;
                }
                _ => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
        String::from_utf8(out).or_else(|_| self.error(pos, "string escapes produce invalid UTF-8"))
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), OpamError> {
        let pos = self.pos();
        let b = self.byte(self.at);
        let hex = |b: Option<u8>| b.and_then(|b| (b as char).to_digit(16));
        let dec = |b: Option<u8>| b.and_then(|b| (b as char).to_digit(10));
        match b {
            // A line continuation: the newline and the next line's leading blanks vanish.
            Some(b'\n') | Some(b'\r') => {
                if b == Some(b'\r') {
                    if self.byte(self.at + 1) != Some(b'\n') {
                        return self.error(pos, "illegal escape sequence");
                    }
                    self.at += 1;
                }
                self.at += 1;
                self.newline();
                while matches!(self.byte(self.at), Some(b' ' | b'\t')) {
                    self.at += 1;
                }
            }
            Some(c @ (b'\\' | b'"' | b'\'' | b' ')) => {
                out.push(c);
                self.at += 1;
            }
            Some(b'n') | Some(b'r') | Some(b't') | Some(b'b') => {
                out.push(match b {
                    Some(b'n') => b'\n',
                    Some(b'r') => b'\r',
                    Some(b't') => b'\t',
                    _ => 8,
                });
                self.at += 1;
            }
            Some(b'x') => match (hex(self.byte(self.at + 1)), hex(self.byte(self.at + 2))) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    self.at += 3;
                }
                _ => return self.error(pos, "illegal escape sequence"),
            },
            _ => match (dec(b), dec(self.byte(self.at + 1)), dec(self.byte(self.at + 2))) {
                (Some(a), Some(b), Some(c)) if a * 100 + b * 10 + c <= 255 => {
                    out.push((a * 100 + b * 10 + c) as u8);
                    self.at += 3;
                }
                _ => return self.error(pos, "illegal escape sequence"),
            },
        }
        Ok(())
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<(Token, Pos)>,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<&Token, OpamError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next()?);
        }
        Ok(self.peeked.as_ref().map(|(t, _)| t).unwrap_or(&Token::Eof))
    }

    fn bump(&mut self) -> Result<(Token, Pos), OpamError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next(),
        }
    }

    fn unexpected<T>(&self, token: &Token, pos: Pos, wanted: &str) -> Result<T, OpamError> {
        self.lexer.error(pos, format!("expected {wanted}, found {}", token.describe()))
    }

    fn enter(&mut self, pos: Pos) -> Result<(), OpamError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.lexer.error(pos, format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn items(&mut self, in_section: bool) -> Result<Vec<Item>, OpamError> {
        let mut items = Vec::new();
        loop {
            let (token, pos) = self.bump()?;
            let name = match token {
                Token::Eof if !in_section => return Ok(items),
                Token::RBrace if in_section => return Ok(items),
                Token::Ident(name) => name,
                other => {
                    let wanted = if in_section { "a field name or '}'" } else { "a field name" };
                    return self.unexpected(&other, pos, wanted);
                }
            };
            let (token, pos) = self.bump()?;
            match token {
                Token::Colon => {
                    let value = self.value()?;
                    items.push(Item::Field { name, value });
                }
                Token::LBrace => items.push(self.section(name, None, pos)?),
                Token::String(label) => match self.bump()? {
                    (Token::LBrace, pos) => items.push(self.section(name, Some(label), pos)?),
                    (other, pos) => return self.unexpected(&other, pos, "'{' after a section name"),
                },
                other => return self.unexpected(&other, pos, "':' or a section"),
            }
        }
    }

    fn section(&mut self, kind: String, name: Option<String>, pos: Pos) -> Result<Item, OpamError> {
        self.enter(pos)?;
        let items = self.items(true)?;
        self.depth -= 1;
        Ok(Item::Section { kind, name, items })
    }

    fn value(&mut self) -> Result<Value, OpamError> {
        let entered = self.depth;
        let mut left = self.and_value()?;
        while *self.peek()? == Token::Or {
            let (_, pos) = self.bump()?;
            // Each chained operator deepens the (left-nested) tree: count it.
            self.enter(pos)?;
            let right = self.and_value()?;
            left = Value::Logop(LogOp::Or, Box::new(left), Box::new(right));
        }
        self.depth = entered;
        Ok(left)
    }

    fn and_value(&mut self) -> Result<Value, OpamError> {
        let entered = self.depth;
        let mut left = self.prefix_value()?;
        while *self.peek()? == Token::And {
            let (_, pos) = self.bump()?;
            self.enter(pos)?;
            let right = self.prefix_value()?;
            left = Value::Logop(LogOp::And, Box::new(left), Box::new(right));
        }
        self.depth = entered;
        Ok(left)
    }

    fn prefix_value(&mut self) -> Result<Value, OpamError> {
        if let Token::Pfxop(op) = *self.peek()? {
            let (_, pos) = self.bump()?;
            self.enter(pos)?;
            let inner = self.prefix_value()?;
            self.depth -= 1;
            return Ok(Value::Pfxop(op, Box::new(inner)));
        }
        self.option_value()
    }

    fn option_value(&mut self) -> Result<Value, OpamError> {
        let entered = self.depth;
        let mut value = self.relop_value()?;
        while *self.peek()? == Token::LBrace {
            let (_, pos) = self.bump()?;
            self.enter(pos)?;
            let filter = self.values(Token::RBrace)?;
            value = Value::Option(Box::new(value), filter);
        }
        self.depth = entered;
        Ok(value)
    }

    fn relop_value(&mut self) -> Result<Value, OpamError> {
        if let Token::Relop(op) = *self.peek()? {
            self.bump()?;
            let atom = self.atom()?;
            return Ok(Value::PrefixRelop(op, Box::new(atom)));
        }
        let (token, pos) = self.bump()?;
        let value = match token {
            Token::LBracket | Token::LParen => {
                self.enter(pos)?;
                let closing = if token == Token::LBracket { Token::RBracket } else { Token::RParen };
                let values = self.values(closing)?;
                self.depth -= 1;
                return Ok(if token == Token::LBracket { Value::List(values) } else { Value::Group(values) });
            }
            other => self.atom_of(other, pos)?,
        };
        match *self.peek()? {
            Token::Relop(op) => {
                self.bump()?;
                let right = self.atom()?;
                Ok(Value::Relop(op, Box::new(value), Box::new(right)))
            }
            Token::Envop(op) => {
                self.bump()?;
                let right = self.atom()?;
                Ok(Value::EnvBinding(Box::new(value), op, Box::new(right)))
            }
            _ => Ok(value),
        }
    }

    fn atom(&mut self) -> Result<Value, OpamError> {
        let (token, pos) = self.bump()?;
        self.atom_of(token, pos)
    }

    fn atom_of(&self, token: Token, pos: Pos) -> Result<Value, OpamError> {
        match token {
            Token::Ident(i) => Ok(Value::Ident(i)),
            Token::Bool(b) => Ok(Value::Bool(b)),
            Token::Int(i) => Ok(Value::Int(i)),
            Token::String(s) => Ok(Value::String(s)),
            other => self.unexpected(&other, pos, "a value"),
        }
    }

    /// Values up to (and consuming) `closing`.
    fn values(&mut self, closing: Token) -> Result<Vec<Value>, OpamError> {
        let mut values = Vec::new();
        loop {
            let token = self.peek()?;
            if *token == closing {
                self.bump()?;
                return Ok(values);
            }
            if *token == Token::Eof {
                let (token, pos) = self.bump()?;
                return self.unexpected(&token, pos, &closing.describe());
            }
            values.push(self.value()?);
        }
    }
}

/// Parses an opam file (also a switch export, whose packages are sections).
pub fn parse_opam_file(input: &str) -> Result<OpamFile, OpamError> {
    let mut parser = Parser { lexer: Lexer::new(input), peeked: None, depth: 0 };
    let items = parser.items(false)?;
    Ok(OpamFile { items })
}

/// Parses a single value (as found on the right of `field:`), e.g. for tests and tools.
pub fn parse_opam_value(input: &str) -> Result<Value, OpamError> {
    let mut parser = Parser { lexer: Lexer::new(input), peeked: None, depth: 0 };
    let value = parser.value()?;
    match parser.bump()? {
        (Token::Eof, _) => Ok(value),
        (other, pos) => parser.unexpected(&other, pos, "end of input"),
    }
}
