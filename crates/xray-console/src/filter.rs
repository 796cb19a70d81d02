//! X-Ray filter expressions, the subset the console understands:
//!
//! - keywords: `ok`, `error`, `fault`, `throttle`, `partial` (alone, or compared with `true`/`false`);
//! - `responsetime` and `duration` (seconds) and `http.status` with `=`, `!=`, `<`, `<=`, `>`, `>=`;
//! - `http.url`, `http.method`, `http.useragent`, `http.clientip` with `=`, `!=`, `CONTAINS`, `BEGINSWITH`,
//!   `ENDSWITH` and a quoted string;
//! - `annotation.KEY` (or `annotation[KEY]`) compared with a string, a number or a boolean;
//! - `service("name")`, optionally followed by `{ expression }` (the group filter's form);
//! - `AND`/`&&`, `OR`/`||`, `!`/`NOT` and parentheses; keywords and operators in any case.
//!
//! As in X-Ray, the keywords and `service` look at the whole trace, `http.*` and `responsetime` at its entry point.

use crate::segment::Annotation;
use crate::store::Trace;
use crate::summary::Summary;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Flag(Flag, bool),
    Number(NumberField, Comparison, f64),
    Text(TextField, Comparison, String),
    Annotation(String, Comparison, Value),
    Service(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Ok,
    Error,
    Fault,
    Throttle,
    Partial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberField {
    ResponseTime,
    Duration,
    HttpStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    HttpUrl,
    HttpMethod,
    HttpUserAgent,
    HttpClientIp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Contains,
    BeginsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Number(f64),
    Boolean(bool),
}

/// A filter expression that does not parse, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter expression at character {position}: {message}")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl Filter {
    /// Parses an expression.
    pub fn parse(expression: &str) -> Result<Self, FilterError> {
        let tokens = tokenize(expression)?;
        let mut parser = Parser { tokens, next: 0, length: expression.len() };
        let filter = parser.or()?;
        match parser.peek() {
            None => Ok(filter),
            Some((position, token)) => Err(FilterError { position, message: format!("unexpected {token:?}") }),
        }
    }

    /// Whether the trace matches.
    pub fn matches(&self, summary: &Summary, trace: &Trace) -> bool {
        match self {
            Filter::And(left, right) => left.matches(summary, trace) && right.matches(summary, trace),
            Filter::Or(left, right) => left.matches(summary, trace) || right.matches(summary, trace),
            Filter::Not(inner) => !inner.matches(summary, trace),
            Filter::Flag(flag, expected) => {
                let value = match flag {
                    Flag::Ok => !(summary.has_fault || summary.has_error || summary.has_throttle),
                    Flag::Error => summary.has_error,
                    Flag::Fault => summary.has_fault,
                    Flag::Throttle => summary.has_throttle,
                    Flag::Partial => summary.is_partial,
                };
                value == *expected
            }
            Filter::Number(field, comparison, expected) => {
                let value = match field {
                    NumberField::ResponseTime => Some(summary.response_time),
                    NumberField::Duration => Some(summary.duration),
                    NumberField::HttpStatus => summary.http_status().map(f64::from),
                };
                value.is_some_and(|value| compare_numbers(value, *comparison, *expected))
            }
            Filter::Text(field, comparison, expected) => {
                let root = &summary.root;
                let value = match field {
                    TextField::HttpUrl => &root.http_url,
                    TextField::HttpMethod => &root.http_method,
                    TextField::HttpUserAgent => &root.user_agent,
                    TextField::HttpClientIp => &root.client_ip,
                };
                value.as_deref().is_some_and(|value| compare_text(value, *comparison, expected))
            }
            Filter::Annotation(key, comparison, expected) => {
                summary.annotations.get(key).into_iter().flatten().any(|value| match (value, expected) {
                    (Annotation::Number(value), Value::Number(expected)) => {
                        compare_numbers(*value, *comparison, *expected)
                    }
                    (Annotation::Boolean(value), Value::Boolean(expected)) => match comparison {
                        Comparison::Equal => value == expected,
                        Comparison::NotEqual => value != expected,
                        _ => false,
                    },
                    (value, Value::Text(expected)) => compare_text(&value.text(), *comparison, expected),
                    (value, Value::Number(expected)) => compare_text(&value.text(), *comparison, &expected.to_string()),
                    (value, Value::Boolean(expected)) => {
                        compare_text(&value.text(), *comparison, &expected.to_string())
                    }
                })
            }
            Filter::Service(name) => trace.nodes().any(|node| {
                crate::summary::service_of(node).is_some_and(|(service, _)| service.eq_ignore_ascii_case(name))
            }),
        }
    }
}

fn compare_numbers(value: f64, comparison: Comparison, expected: f64) -> bool {
    match comparison {
        Comparison::Equal => value == expected,
        Comparison::NotEqual => value != expected,
        Comparison::Less => value < expected,
        Comparison::LessOrEqual => value <= expected,
        Comparison::Greater => value > expected,
        Comparison::GreaterOrEqual => value >= expected,
        Comparison::Contains | Comparison::BeginsWith | Comparison::EndsWith => false,
    }
}

fn compare_text(value: &str, comparison: Comparison, expected: &str) -> bool {
    match comparison {
        Comparison::Equal => value == expected,
        Comparison::NotEqual => value != expected,
        Comparison::Contains => value.contains(expected),
        Comparison::BeginsWith => value.starts_with(expected),
        Comparison::EndsWith => value.ends_with(expected),
        Comparison::Less => value < expected,
        Comparison::LessOrEqual => value <= expected,
        Comparison::Greater => value > expected,
        Comparison::GreaterOrEqual => value >= expected,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    Operator(&'static str),
    Open,
    Close,
    OpenBrace,
    CloseBrace,
}

fn tokenize(expression: &str) -> Result<Vec<(usize, Token)>, FilterError> {
    let chars: Vec<(usize, char)> = expression.char_indices().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    let error = |position, message: &str| FilterError { position, message: message.to_owned() };
    while index < chars.len() {
        let (position, char) = chars[index];
        match char {
            _ if char.is_whitespace() => index += 1,
            '(' | ')' | '{' | '}' => {
                tokens.push((
                    position,
                    match char {
                        '(' => Token::Open,
                        ')' => Token::Close,
                        '{' => Token::OpenBrace,
                        _ => Token::CloseBrace,
                    },
                ));
                index += 1;
            }
            '"' | '\'' => {
                let mut text = String::new();
                index += 1;
                loop {
                    let Some(&(_, next)) = chars.get(index) else {
                        return Err(error(position, "unterminated string"));
                    };
                    index += 1;
                    match next {
                        '\\' => {
                            if let Some(&(_, escaped)) = chars.get(index) {
                                text.push(escaped);
                                index += 1;
                            }
                        }
                        _ if next == char => break,
                        _ => text.push(next),
                    }
                }
                tokens.push((position, Token::Text(text)));
            }
            '=' | '!' | '<' | '>' | '&' | '|' => {
                let next = chars.get(index + 1).map(|(_, next)| *next);
                let (operator, width) = match (char, next) {
                    ('!', Some('=')) => ("!=", 2),
                    ('<', Some('=')) => ("<=", 2),
                    ('>', Some('=')) => (">=", 2),
                    ('&', Some('&')) => ("&&", 2),
                    ('|', Some('|')) => ("||", 2),
                    ('=', _) => ("=", 1),
                    ('!', _) => ("!", 1),
                    ('<', _) => ("<", 1),
                    ('>', _) => (">", 1),
                    _ => return Err(error(position, "unknown operator")),
                };
                tokens.push((position, Token::Operator(operator)));
                index += width;
            }
            _ if char.is_ascii_digit()
                || (char == '-' && chars.get(index + 1).is_some_and(|(_, c)| c.is_ascii_digit())) =>
            {
                let start = index;
                index += 1;
                while chars.get(index).is_some_and(|(_, c)| c.is_ascii_digit() || *c == '.') {
                    index += 1;
                }
                let text: String = chars[start..index].iter().map(|(_, c)| c).collect();
                let number = text.parse().map_err(|_| error(position, "not a number"))?;
                tokens.push((position, Token::Number(number)));
            }
            _ if char.is_alphanumeric() || char == '_' => {
                let start = index;
                let mut in_brackets = false;
                while let Some(&(_, c)) = chars.get(index) {
                    let part = c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | ':');
                    if c == '[' {
                        in_brackets = true;
                    } else if c == ']' && in_brackets {
                        in_brackets = false;
                    } else if !part && !in_brackets {
                        break;
                    }
                    index += 1;
                }
                tokens.push((position, Token::Word(chars[start..index].iter().map(|(_, c)| c).collect())));
            }
            _ => return Err(error(position, &format!("unexpected character {char:?}"))),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    next: usize,
    length: usize,
}

impl Parser {
    fn peek(&self) -> Option<(usize, Token)> {
        self.tokens.get(self.next).cloned()
    }

    fn advance(&mut self) -> Option<(usize, Token)> {
        let token = self.peek();
        self.next += 1;
        token
    }

    fn error(&self, message: impl Into<String>) -> FilterError {
        let position = self.tokens.get(self.next).map_or(self.length, |(position, _)| *position);
        FilterError { position, message: message.into() }
    }

    fn is_word(&self, words: &[&str]) -> bool {
        matches!(self.peek(), Some((_, Token::Word(word))) if words.iter().any(|w| word.eq_ignore_ascii_case(w)))
    }

    fn is_operator(&self, operators: &[&str]) -> bool {
        matches!(self.peek(), Some((_, Token::Operator(operator))) if operators.contains(&operator))
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.is_word(&["or"]) || self.is_operator(&["||"]) {
            self.advance();
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.not()?;
        while self.is_word(&["and"]) || self.is_operator(&["&&"]) {
            self.advance();
            left = Filter::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Filter, FilterError> {
        if self.is_word(&["not"]) || self.is_operator(&["!"]) {
            self.advance();
            return Ok(Filter::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Filter, FilterError> {
        match self.advance() {
            Some((_, Token::Open)) => {
                let inner = self.or()?;
                self.expect(|token| matches!(token, Token::Close), "expected )")?;
                Ok(inner)
            }
            Some((position, Token::Word(word))) => self.word(position, &word),
            Some((position, token)) => Err(FilterError { position, message: format!("unexpected {token:?}") }),
            None => Err(self.error("the expression ends too early")),
        }
    }

    fn word(&mut self, position: usize, word: &str) -> Result<Filter, FilterError> {
        let lower = word.to_ascii_lowercase();
        let flag = match lower.as_str() {
            "ok" => Some(Flag::Ok),
            "error" => Some(Flag::Error),
            "fault" => Some(Flag::Fault),
            "throttle" => Some(Flag::Throttle),
            "partial" => Some(Flag::Partial),
            _ => None,
        };
        if let Some(flag) = flag {
            if !self.is_operator(&["=", "!="]) {
                return Ok(Filter::Flag(flag, true));
            }
            let equal = matches!(self.advance(), Some((_, Token::Operator("="))));
            return match self.value()? {
                Value::Boolean(value) => Ok(Filter::Flag(flag, value == equal)),
                _ => Err(FilterError {
                    position: self.last_position(),
                    message: format!("{word} compares with true or false"),
                }),
            };
        }
        if lower == "service" {
            return self.service();
        }
        let number = match lower.as_str() {
            "responsetime" => Some(NumberField::ResponseTime),
            "duration" => Some(NumberField::Duration),
            "http.status" => Some(NumberField::HttpStatus),
            _ => None,
        };
        if let Some(field) = number {
            let comparison = self.comparison()?;
            return match self.value()? {
                Value::Number(value) => Ok(Filter::Number(field, comparison, value)),
                _ => Err(FilterError {
                    position: self.last_position(),
                    message: format!("{word} compares with a number"),
                }),
            };
        }
        let text = match lower.as_str() {
            "http.url" => Some(TextField::HttpUrl),
            "http.method" => Some(TextField::HttpMethod),
            "http.useragent" => Some(TextField::HttpUserAgent),
            "http.clientip" => Some(TextField::HttpClientIp),
            _ => None,
        };
        if let Some(field) = text {
            let comparison = self.comparison()?;
            return match self.value()? {
                Value::Text(value) => Ok(Filter::Text(field, comparison, value)),
                _ => Err(FilterError {
                    position: self.last_position(),
                    message: format!("{word} compares with a quoted string"),
                }),
            };
        }
        let key = lower
            .strip_prefix("annotation.")
            .map(|_| &word["annotation.".len()..])
            .or_else(|| lower.strip_prefix("annotation[").map(|_| word["annotation[".len()..].trim_end_matches(']')));
        if let Some(key) = key.filter(|key| !key.is_empty()) {
            let key = key.to_owned();
            let comparison = self.comparison()?;
            return Ok(Filter::Annotation(key, comparison, self.value()?));
        }
        Err(FilterError { position, message: format!("unknown keyword {word:?}") })
    }

    fn service(&mut self) -> Result<Filter, FilterError> {
        self.expect(|token| matches!(token, Token::Open), "service takes a name: service(\"name\")")?;
        let name = match self.peek() {
            Some((_, Token::Text(name))) => name,
            _ => return Err(self.error("service takes a quoted name: service(\"name\")")),
        };
        self.advance();
        self.expect(|token| matches!(token, Token::Close), "expected )")?;
        let service = Filter::Service(name);
        if matches!(self.peek(), Some((_, Token::OpenBrace))) {
            self.advance();
            let inner = self.or()?;
            self.expect(|token| matches!(token, Token::CloseBrace), "expected }")?;
            return Ok(Filter::And(Box::new(service), Box::new(inner)));
        }
        Ok(service)
    }

    /// Takes the next token if it is the expected one; otherwise an error at its position.
    fn expect(&mut self, expected: impl Fn(&Token) -> bool, message: &str) -> Result<(), FilterError> {
        match self.peek() {
            Some((_, token)) if expected(&token) => {
                self.advance();
                Ok(())
            }
            _ => Err(self.error(message)),
        }
    }

    fn comparison(&mut self) -> Result<Comparison, FilterError> {
        let comparison = match self.advance() {
            Some((_, Token::Operator("="))) => Comparison::Equal,
            Some((_, Token::Operator("!="))) => Comparison::NotEqual,
            Some((_, Token::Operator("<"))) => Comparison::Less,
            Some((_, Token::Operator("<="))) => Comparison::LessOrEqual,
            Some((_, Token::Operator(">"))) => Comparison::Greater,
            Some((_, Token::Operator(">="))) => Comparison::GreaterOrEqual,
            Some((_, Token::Word(word))) if word.eq_ignore_ascii_case("contains") => Comparison::Contains,
            Some((_, Token::Word(word))) if word.eq_ignore_ascii_case("beginswith") => Comparison::BeginsWith,
            Some((_, Token::Word(word))) if word.eq_ignore_ascii_case("endswith") => Comparison::EndsWith,
            _ => {
                self.next -= 1;
                return Err(self.error("expected a comparison (=, !=, <, <=, >, >=, CONTAINS, BEGINSWITH, ENDSWITH)"));
            }
        };
        Ok(comparison)
    }

    /// The position of the token just taken.
    fn last_position(&self) -> usize {
        self.tokens.get(self.next.saturating_sub(1)).map_or(self.length, |(position, _)| *position)
    }

    fn value(&mut self) -> Result<Value, FilterError> {
        match self.advance() {
            Some((_, Token::Text(text))) => Ok(Value::Text(text)),
            Some((_, Token::Number(number))) => Ok(Value::Number(number)),
            Some((_, Token::Word(word))) if word.eq_ignore_ascii_case("true") => Ok(Value::Boolean(true)),
            Some((_, Token::Word(word))) if word.eq_ignore_ascii_case("false") => Ok(Value::Boolean(false)),
            _ => {
                self.next -= 1;
                Err(self.error("expected a value: a number, a quoted string, true or false"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Limits, Source, Store};

    fn store() -> Store {
        let mut store = Store::new(Limits { max_traces: 100, max_bytes: usize::MAX });
        let documents = [
            // 1: a 200 from the backend, with a SQL call and an annotation
            r#"{"trace_id":"1-00000000-000000000000000000000001","id":"a1","name":"cruddur-backend","start_time":10,"end_time":10.2,
               "http":{"request":{"method":"GET","url":"http://localhost:4567/api/activities/home","user_agent":"curl/8"},"response":{"status":200}},
               "annotations":{"handle":"andrewbrown","results":3,"cached":false},
               "subsegments":[{"id":"a2","name":"cruddur@localhost","start_time":10.05,"end_time":10.1,"namespace":"remote","sql":{"sanitized_query":"SELECT 1"}}]}"#,
            // 2: a 500 (fault), slow
            r#"{"trace_id":"1-00000000-000000000000000000000002","id":"b1","name":"cruddur-backend","start_time":20,"end_time":23.5,
               "fault":true,"http":{"request":{"method":"POST","url":"http://localhost:4567/api/activities"},"response":{"status":500}}}"#,
            // 3: a 429 (error and throttle) from another service
            r#"{"trace_id":"1-00000000-000000000000000000000003","id":"c1","name":"frontend","start_time":30,"end_time":30.05,
               "error":true,"throttle":true,"http":{"request":{"method":"GET","url":"http://localhost:3000/"},"response":{"status":429}}}"#,
            // 4: a browser span calling the backend: the backend's segment has the browser's span as its parent
            r#"{"trace_id":"1-00000000-000000000000000000000004","id":"d1","name":"cruddur-frontend","start_time":40,"end_time":41,
               "http":{"request":{"method":"GET","url":"http://localhost:4567/api/activities/home"},"response":{"status":200}}}"#,
            r#"{"trace_id":"1-00000000-000000000000000000000004","id":"d2","parent_id":"d1","name":"cruddur-backend","start_time":40.1,"end_time":40.9,"error":true,
               "http":{"request":{"method":"GET","url":"http://backend/api/activities/home"},"response":{"status":404}}}"#,
        ];
        for document in documents {
            store.insert(document, Source::Xray).unwrap();
        }
        store
    }

    fn matching(expression: &str) -> Vec<u32> {
        let store = store();
        let filter = Filter::parse(expression).unwrap_or_else(|error| panic!("{expression}: {error}"));
        let mut found: Vec<u32> = store
            .traces()
            .filter(|trace| filter.matches(&Summary::of(trace).unwrap(), trace))
            .map(|trace| u32::from_str_radix(&trace.id[11..], 16).unwrap())
            .collect();
        found.sort();
        found
    }

    #[test]
    fn each_form_of_the_subset_selects_the_right_traces() {
        let cases: &[(&str, &[u32])] = &[
            ("fault", &[2]),
            ("error", &[3, 4]),
            ("throttle", &[3]),
            ("ok", &[1]),
            ("!ok", &[2, 3, 4]),
            ("fault = false", &[1, 3, 4]),
            ("http.status = 500", &[2]),
            ("http.status >= 400", &[2, 3]),
            ("http.status != 200", &[2, 3]),
            ("responsetime > 1", &[2]),
            ("responsetime < 0.1", &[3]),
            ("duration >= 1", &[2, 4]),
            ("service(\"cruddur-backend\")", &[1, 2, 4]),
            ("service(\"frontend\")", &[3]),
            ("service(\"cruddur@localhost\")", &[1]),
            ("service(\"cruddur-backend\") {fault OR error}", &[2, 4]),
            ("http.method = \"POST\"", &[2]),
            ("http.url CONTAINS \"/api/activities\"", &[1, 2, 4]),
            ("http.url ENDSWITH \"/home\" AND ok", &[1]),
            ("http.url BEGINSWITH \"http://localhost:3000\"", &[3]),
            ("http.useragent = \"curl/8\"", &[1]),
            ("annotation.handle = \"andrewbrown\"", &[1]),
            ("annotation[handle] = \"bayko\"", &[]),
            ("annotation.results > 2", &[1]),
            ("annotation.cached = false", &[1]),
            ("(fault || throttle) && http.method = \"GET\"", &[3]),
            ("NOT (fault OR error) and duration < 1", &[1]),
            ("fault or error and throttle", &[2, 3]),
        ];
        for (expression, expected) in cases {
            assert_eq!(matching(expression), *expected, "{expression}");
        }
    }

    #[test]
    fn mistakes_are_reported_with_their_position() {
        for (expression, position) in [
            ("http.status = ", 14),
            ("http.status \"x\"", 12),
            ("service(cruddur)", 8),
            ("fault AND", 9),
            ("(fault", 6),
            ("bogus = 1", 0),
            ("http.url = 5", 11),
            ("\"open", 0),
            ("fault $", 6),
        ] {
            let error = Filter::parse(expression).unwrap_err();
            assert_eq!(error.position, position, "{expression}: {error}");
        }
    }
}
