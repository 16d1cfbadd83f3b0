//! Parser of MongoDB queries written in the mongosh shell syntax or in a structured JSON form.
//!
//! [`parse_shell`] turns text such as `db.orders.find({status: "paid"}).sort({_id: -1}).limit(10)` into a typed
//! [`MongoCommand`] that the connector runs through the Rust driver. Nothing is evaluated as JavaScript: text
//! outside the grammar below is a [`ParseError`] with the byte offset of the offending token.
//!
//! - Receivers: `db.orders`, `db.a.b` (collection `a.b`), `db["orders"]`, `db['orders']` and
//!   `db.getCollection("orders")`, plus `db.getCollectionNames()`, `show collections` and `show tables`.
//! - Collection methods: find, findOne, aggregate, countDocuments, count, estimatedDocumentCount, distinct,
//!   insertOne, insertMany, updateOne, updateMany, replaceOne, deleteOne and deleteMany.
//! - Cursor methods: sort, limit, skip, projection, count, toArray and pretty after find, and toArray and pretty
//!   after aggregate.
//! - Values: JSON plus unquoted keys, single-quoted strings, trailing commas, `//` and `/* */` comments, regex
//!   literals, `undefined`, `NaN` and `Infinity`. Extended JSON objects such as `{"$oid": "…"}` become typed values.
//! - Constructors, with or without `new`: ObjectId, ISODate, Date, NumberLong, NumberInt, NumberDecimal,
//!   Decimal128, Timestamp, BinData, UUID, MinKey and MaxKey.
//!
//! - Parameters: `{{name}}` where a value goes, such as `find({status: {{status}}})`, is replaced by the typed
//!   value bound to `name` (see [`parse_with_params`]). Inside strings, regexes and comments it is plain text.
//!
//! [`parse_structured`] reads the same commands from a JSON object whose values are MongoDB Extended JSON v2.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use base64::Engine as _;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{Binary, Bson, DateTime, Decimal128, Document, Regex, Timestamp};

/// Maximum length of a query text in bytes (1 MiB).
const MAX_INPUT_BYTES: usize = 1024 * 1024;

/// Maximum number of objects, arrays and constructor calls nested inside one another in one value.
/// MongoDB supports at most 100 levels of nested objects and arrays (MongoDB manual, "Limits and Thresholds"), and
/// the command document that carries a query adds one level, so deeper input could never run. The limit also
/// bounds the parser's recursion.
const MAX_NESTING_DEPTH: usize = 99;

/// Maximum number of characters of user input quoted in an error message.
const MAX_QUOTED_CHARS: usize = 40;

const COLLECTION_METHODS: [&str; 14] = [
    "find",
    "findOne",
    "aggregate",
    "countDocuments",
    "count",
    "estimatedDocumentCount",
    "distinct",
    "insertOne",
    "insertMany",
    "updateOne",
    "updateMany",
    "replaceOne",
    "deleteOne",
    "deleteMany",
];

const CONSTRUCTORS: [&str; 12] = [
    "ObjectId",
    "ISODate",
    "Date",
    "NumberLong",
    "NumberInt",
    "NumberDecimal",
    "Decimal128",
    "Timestamp",
    "BinData",
    "UUID",
    "MinKey",
    "MaxKey",
];

/// Keys that make an object one Extended JSON v2 value, as the `bson` crate's converter detects them.
const EXTENDED_JSON_KEYS: [&str; 16] = [
    "$oid",
    "$symbol",
    "$regularExpression",
    "$numberInt",
    "$numberLong",
    "$numberDouble",
    "$numberDecimal",
    "$binary",
    "$uuid",
    "$code",
    "$timestamp",
    "$date",
    "$minKey",
    "$maxKey",
    "$dbPointer",
    "$undefined",
];

/// Regex flags accepted in regex literals, in the alphabetical order that BSON requires. The MongoDB manual for
/// `$regex` documents i, m, s and x, and the BSON specification also defines u.
const REGEX_OPTIONS: &str = "imsux";

/// Operation of a parsed MongoDB command.
#[derive(Clone, Debug, PartialEq)]
pub enum MongoOperation {
    Find {
        filter: Document,
        projection: Option<Document>,
        sort: Option<Document>,
        skip: Option<u64>,
        limit: Option<i64>,
    },
    FindOne {
        filter: Document,
        projection: Option<Document>,
        sort: Option<Document>,
        skip: Option<u64>,
    },
    Aggregate {
        pipeline: Vec<Document>,
        options: Option<Document>,
    },
    CountDocuments {
        filter: Document,
        skip: Option<u64>,
        limit: Option<u64>,
    },
    EstimatedDocumentCount,
    Distinct {
        field: String,
        filter: Document,
    },
    InsertOne {
        document: Document,
    },
    InsertMany {
        documents: Vec<Document>,
    },
    UpdateOne {
        filter: Document,
        update: UpdateSpec,
        upsert: bool,
    },
    UpdateMany {
        filter: Document,
        update: UpdateSpec,
        upsert: bool,
    },
    ReplaceOne {
        filter: Document,
        replacement: Document,
        upsert: bool,
    },
    DeleteOne {
        filter: Document,
    },
    DeleteMany {
        filter: Document,
    },
    /// `db.getCollectionNames()` / `show collections`
    ListCollections,
}

/// Update of an updateOne or updateMany: a document of update operators or an aggregation pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateSpec {
    Document(Document),
    Pipeline(Vec<Document>),
}

/// Parsed MongoDB command: the collection and the operation to run on it.
#[derive(Clone, Debug, PartialEq)]
pub struct MongoCommand {
    /// `None` only for ListCollections.
    pub collection: Option<String>,
    pub operation: MongoOperation,
}

impl MongoOperation {
    /// Reports whether the operation changes data. Aggregations whose pipeline contains `$out` or `$merge` count as
    /// writes.
    pub fn is_write(&self) -> bool {
        match self {
            Self::Aggregate { pipeline, .. } => pipeline_writes(pipeline),
            Self::InsertOne { .. }
            | Self::InsertMany { .. }
            | Self::UpdateOne { .. }
            | Self::UpdateMany { .. }
            | Self::ReplaceOne { .. }
            | Self::DeleteOne { .. }
            | Self::DeleteMany { .. } => true,
            Self::Find { .. }
            | Self::FindOne { .. }
            | Self::CountDocuments { .. }
            | Self::EstimatedDocumentCount
            | Self::Distinct { .. }
            | Self::ListCollections => false,
        }
    }

    /// Returns the short name used in messages: "find", "aggregate", "insertOne", ...
    pub fn name(&self) -> &'static str {
        match self {
            Self::Find { .. } => "find",
            Self::FindOne { .. } => "findOne",
            Self::Aggregate { .. } => "aggregate",
            Self::CountDocuments { .. } => "countDocuments",
            Self::EstimatedDocumentCount => "estimatedDocumentCount",
            Self::Distinct { .. } => "distinct",
            Self::InsertOne { .. } => "insertOne",
            Self::InsertMany { .. } => "insertMany",
            Self::UpdateOne { .. } => "updateOne",
            Self::UpdateMany { .. } => "updateMany",
            Self::ReplaceOne { .. } => "replaceOne",
            Self::DeleteOne { .. } => "deleteOne",
            Self::DeleteMany { .. } => "deleteMany",
            Self::ListCollections => "listCollections",
        }
    }
}

/// Reports whether any document in the pipeline has an `$out` or `$merge` key. Nested documents are searched
/// too, so a stage inside a sub-pipeline also counts, and a false positive only makes a read look like a write.
/// A stack replaces recursion because callers may build arbitrarily deep documents.
fn pipeline_writes(pipeline: &[Document]) -> bool {
    let has_write_key = |document: &Document| document.contains_key("$out") || document.contains_key("$merge");
    let mut pending: Vec<&Bson> = Vec::new();
    for stage in pipeline {
        if has_write_key(stage) {
            return true;
        }
        pending.extend(stage.values());
    }

    while let Some(value) = pending.pop() {
        match value {
            Bson::Document(document) => {
                if has_write_key(document) {
                    return true;
                }
                pending.extend(document.values());
            }
            Bson::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    false
}

/// Error of [`parse_shell`], [`parse_structured`] or [`parse`], with the byte offset of the offending input.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{message} (at byte {offset})")]
pub struct ParseError {
    pub message: String,
    pub offset: usize,
}

impl ParseError {
    fn new(message: impl Into<String>, offset: usize) -> Self {
        Self {
            message: message.into(),
            offset,
        }
    }
}

/// Parses shell-style text such as `db.orders.find({status: "paid"}).sort({_id: -1}).limit(10)`.
pub fn parse_shell(text: &str) -> Result<MongoCommand, ParseError> {
    parse_with_params(text, &BTreeMap::new())
}

/// Parses shell-style text whose `{{name}}` placeholders stand for the values in `params`. Every placeholder
/// needs a value and every value a placeholder. The values are inserted as typed BSON, so they can never change
/// the shape of the query.
pub fn parse_with_params(text: &str, params: &BTreeMap<String, Bson>) -> Result<MongoCommand, ParseError> {
    check_input_length(text)?;
    let mut parser = Parser::new(text);
    parser.params = params;
    let command = parser.parse_command()?;
    parser.expect_end()?;
    if let Some(unused) = params.keys().find(|name| !parser.used.contains(*name)) {
        return Err(ParseError::new(
            format!("the parameter `{unused}` is not used in the query; write {{{{{unused}}}}} where its value goes"),
            text.len(),
        ));
    }
    Ok(command)
}

/// Returns the names of the `{{name}}` placeholders in shell-style text, or `None` when the
/// text does not parse.
pub fn placeholders(text: &str) -> Option<BTreeSet<String>> {
    check_input_length(text).ok()?;
    let mut parser = Parser::new(text);
    parser.collect = true;
    parser.parse_command().ok()?;
    parser.expect_end().ok()?;
    Some(parser.used)
}

/// Parses the structured form, a JSON object such as
/// `{"collection": "orders", "operation": "find", "filter": {...}, "sort": {...}, "skip": 0, "limit": 10}`.
///
/// `operation` is a name that [`MongoOperation::name`] returns. The other fields belong to the operation:
/// `filter`, `projection`, `sort`, `skip` and `limit` for reads, `pipeline` and `options` for aggregate, `field` for
/// distinct, and `document`, `documents`, `update`, `replacement` and `upsert` for writes. Values are MongoDB
/// Extended JSON v2, canonical or relaxed, such as `{"$oid": …}`, `{"$date": …}`, `{"$numberLong": …}` or
/// `{"$numberDecimal": …}`. Errors of this form have offset 0.
///
/// Fields that the operation does not use are rejected, and so are integers beyond the range of a 64-bit integer.
pub fn parse_structured(value: &serde_json::Value) -> Result<MongoCommand, ParseError> {
    let Some(object) = value.as_object() else {
        return Err(ParseError::new("the structured query must be a JSON object", 0));
    };
    check_json_value(value, 0)?;

    let operation = match object.get("operation") {
        Some(serde_json::Value::String(name)) => name.as_str(),
        Some(_) => return Err(ParseError::new("field `operation` must be a string", 0)),
        None => return Err(ParseError::new("missing field `operation`", 0)),
    };
    let Some(allowed_fields) = structured_fields(operation) else {
        return Err(ParseError::new(
            format!(
                "unsupported operation {}; supported operations are find, findOne, aggregate, countDocuments, \
                 estimatedDocumentCount, distinct, insertOne, insertMany, updateOne, updateMany, replaceOne, \
                 deleteOne, deleteMany and listCollections",
                quote(operation)
            ),
            0,
        ));
    };
    for key in object.keys() {
        if key != "collection" && key != "operation" && !allowed_fields.contains(&key.as_str()) {
            return Err(ParseError::new(
                format!(
                    "unknown field {} for operation `{operation}`; its fields are collection, operation{}",
                    quote(key),
                    allowed_fields
                        .iter()
                        .map(|field| format!(", {field}"))
                        .collect::<String>()
                ),
                0,
            ));
        }
    }

    let fields = StructuredFields { object, operation };
    let collection = if operation == "listCollections" {
        if object.contains_key("collection") {
            return Err(ParseError::new(
                "listCollections takes no collection; remove field `collection`",
                0,
            ));
        }
        None
    } else {
        Some(fields.collection()?)
    };
    let operation = fields.build_operation()?;
    Ok(MongoCommand { collection, operation })
}

/// Parses either form. Text that starts with `{` after whitespace is JSON in the structured form, and anything
/// else is shell syntax.
///
/// A JSON syntax error carries the byte offset that `serde_json` reports. Other errors of the structured form have
/// offset 0.
pub fn parse(text: &str) -> Result<MongoCommand, ParseError> {
    check_input_length(text)?;
    if !text.trim_start().starts_with('{') {
        return parse_shell(text);
    }

    let value: serde_json::Value = serde_json::from_str(text).map_err(|error| {
        let offset = byte_offset_of(text, error.line(), error.column());
        ParseError::new(format!("invalid JSON: {error}"), offset)
    })?;
    parse_structured(&value)
}

fn check_input_length(text: &str) -> Result<(), ParseError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(ParseError::new(
            format!(
                "the query is {} bytes long, which exceeds the maximum of {MAX_INPUT_BYTES} bytes",
                text.len()
            ),
            MAX_INPUT_BYTES,
        ));
    }
    Ok(())
}

/// Converts the 1-based line and column of a `serde_json` error into a byte offset. `serde_json` counts columns
/// in bytes up to the last byte it read, so the offset is the offending byte, or the last byte when the input ends
/// early.
fn byte_offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(index, _)| index + 1)
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

// ---------------------------------------------------------------------------------------------------------------
// Shell syntax: scanner
// ---------------------------------------------------------------------------------------------------------------

/// Recursive-descent parser over the query text. `pos` is a byte offset that always sits on a char boundary.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
    /// Values of the `{{name}}` placeholders.
    params: &'a BTreeMap<String, Bson>,
    /// Placeholders met so far.
    used: BTreeSet<String>,
    /// Accept every placeholder as null, to list them (see [`placeholders`]).
    collect: bool,
}

/// Argument of a method or constructor call, with the byte offset where it starts.
struct Argument {
    value: Bson,
    offset: usize,
}

/// Arguments of a call, with the offset of its closing parenthesis.
struct Arguments {
    values: Vec<Argument>,
    close: usize,
}

impl Arguments {
    /// Checks that the call has between `min` and `max` arguments. `signature` such as `find(filter?, projection?)`
    /// appears in the error message.
    fn check_count(&self, signature: &str, min: usize, max: usize) -> Result<(), ParseError> {
        if let Some(extra) = self.values.get(max) {
            return Err(ParseError::new(
                format!("too many arguments for {signature}"),
                extra.offset,
            ));
        }
        if self.values.len() < min {
            return Err(ParseError::new(format!("missing argument for {signature}"), self.close));
        }
        Ok(())
    }
}

fn is_identifier_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_identifier_part(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Unicode whitespace plus the byte order mark, which JavaScript also treats as whitespace.
fn is_whitespace(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// Quotes user input in backticks for an error message, shortened to [`MAX_QUOTED_CHARS`] characters.
fn quote(text: &str) -> String {
    let mut quoted: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    format!("`{quoted}`")
}

/// Describes the token at `offset` for an error message: the whole word, the character, or the end of input.
fn describe_token(text: &str, offset: usize) -> String {
    let rest = text.get(offset..).unwrap_or_default();
    let Some(first) = rest.chars().next() else {
        return "end of input".to_owned();
    };
    if is_identifier_part(first) {
        let end = rest.find(|c: char| !is_identifier_part(c)).unwrap_or(rest.len());
        return quote(rest.get(..end).unwrap_or(rest));
    }
    quote(&first.to_string())
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        static NO_PARAMS: BTreeMap<String, Bson> = BTreeMap::new();
        Self {
            text,
            pos: 0,
            depth: 0,
            params: &NO_PARAMS,
            used: BTreeSet::new(),
            collect: false,
        }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
            self.pos += expected.len_utf8();
            true
        } else {
            false
        }
    }

    fn describe_next(&self) -> String {
        describe_token(self.text, self.pos)
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = self.rest();
            if rest.starts_with("//") {
                self.pos += rest.find(is_line_terminator).unwrap_or(rest.len());
            } else if rest.starts_with("/*") {
                let Some(length) = rest.get(2..).and_then(|body| body.find("*/")) else {
                    return Err(ParseError::new("unterminated comment: missing `*/`", self.pos));
                };
                self.pos += length + 4;
            } else if let Some(c) = self.peek()
                && is_whitespace(c)
            {
                self.pos += c.len_utf8();
            } else {
                return Ok(());
            }
        }
    }

    /// Skips trivia and consumes `expected`, returning its offset.
    fn expect_char(&mut self, expected: char, context: &str) -> Result<usize, ParseError> {
        self.skip_trivia()?;
        let offset = self.pos;
        if self.eat(expected) {
            return Ok(offset);
        }
        Err(ParseError::new(
            format!("expected `{expected}` {context} but found {}", self.describe_next()),
            offset,
        ))
    }

    /// Consumes an identifier at the current position, without skipping trivia first.
    fn scan_identifier(&mut self) -> Option<(usize, &'a str)> {
        let start = self.pos;
        let rest = self.rest();
        if !rest.chars().next().is_some_and(is_identifier_start) {
            return None;
        }
        let end = rest.find(|c: char| !is_identifier_part(c)).unwrap_or(rest.len());
        self.pos += end;
        Some((start, rest.get(..end).unwrap_or(rest)))
    }

    /// Enters an object, array or constructor call that starts at `offset`.
    fn enter(&mut self, offset: usize) -> Result<(), ParseError> {
        if self.depth >= MAX_NESTING_DEPTH {
            return Err(ParseError::new(
                format!("values nested more than {MAX_NESTING_DEPTH} levels deep are not supported"),
                offset,
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Parses the parenthesized, comma-separated arguments of a call to `callee`.
    fn parse_arguments(&mut self, callee: &str) -> Result<Arguments, ParseError> {
        self.expect_char('(', &format!("after `{callee}`"))?;
        let mut values = Vec::new();
        loop {
            self.skip_trivia()?;
            let offset = self.pos;
            if self.eat(')') {
                return Ok(Arguments { values, close: offset });
            }
            let value = self.parse_value()?;
            values.push(Argument { value, offset });

            self.skip_trivia()?;
            let separator = self.pos;
            if self.eat(')') {
                return Ok(Arguments {
                    values,
                    close: separator,
                });
            }
            if !self.eat(',') {
                return Err(ParseError::new(
                    format!(
                        "expected `,` or `)` in the arguments of `{callee}` but found {}",
                        self.describe_next()
                    ),
                    separator,
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Shell syntax: statements, receivers and methods
// ---------------------------------------------------------------------------------------------------------------

impl Parser<'_> {
    fn parse_command(&mut self) -> Result<MongoCommand, ParseError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some((_, word)) = self.scan_identifier() else {
            return Err(ParseError::new(
                format!(
                    "expected a query starting with `db.` or `show collections` but found {}",
                    self.describe_next()
                ),
                start,
            ));
        };
        match word {
            "db" => self.parse_database_expression(),
            "show" => self.parse_show(),
            _ => Err(ParseError::new(
                format!(
                    "unsupported statement starting with {}: a query starts with `db.` or `show collections`",
                    quote(word)
                ),
                start,
            )),
        }
    }

    fn parse_show(&mut self) -> Result<MongoCommand, ParseError> {
        self.skip_trivia()?;
        let offset = self.pos;
        match self.scan_identifier() {
            Some((_, "collections" | "tables")) => Ok(MongoCommand {
                collection: None,
                operation: MongoOperation::ListCollections,
            }),
            _ => Err(ParseError::new(
                format!(
                    "unsupported show command {}; only `show collections` is supported",
                    describe_token(self.text, offset)
                ),
                offset,
            )),
        }
    }

    /// Accepts an optional `;`, then requires the end of the input.
    fn expect_end(&mut self) -> Result<(), ParseError> {
        self.skip_trivia()?;
        if self.eat(';') {
            self.skip_trivia()?;
        }
        if self.pos < self.text.len() {
            return Err(ParseError::new(
                format!(
                    "unexpected {} after the end of the query; only one query can run at a time",
                    self.describe_next()
                ),
                self.pos,
            ));
        }
        Ok(())
    }

    /// Parses what follows `db`: the collection and the method call. In `db.a.b.find()` the last name followed by
    /// `(` is the method and the names before it form the collection name `a.b`.
    fn parse_database_expression(&mut self) -> Result<MongoCommand, ParseError> {
        let mut name_parts: Vec<String> = Vec::new();
        let mut name_offset = self.pos;
        loop {
            self.skip_trivia()?;
            let offset = self.pos;

            if self.eat('[') {
                self.skip_trivia()?;
                if !matches!(self.peek(), Some('"' | '\'')) {
                    return Err(ParseError::new(
                        format!(
                            "expected a quoted collection name after `[` but found {}",
                            self.describe_next()
                        ),
                        self.pos,
                    ));
                }
                if name_parts.is_empty() {
                    name_offset = self.pos;
                }
                name_parts.push(self.parse_string()?);
                self.expect_char(']', "after the collection name")?;
                continue;
            }

            if !self.eat('.') {
                let message = match name_parts.last() {
                    None => format!("expected `.` after `db` but found {}", self.describe_next()),
                    Some(_) => format!(
                        "expected a method call such as `.find()` after collection {} but found {}",
                        quote(&name_parts.join(".")),
                        self.describe_next()
                    ),
                };
                return Err(ParseError::new(message, offset));
            }

            self.skip_trivia()?;
            let Some((segment_offset, segment)) = self.scan_identifier() else {
                return Err(ParseError::new(
                    format!(
                        "expected a collection or method name after `.` but found {}",
                        self.describe_next()
                    ),
                    self.pos,
                ));
            };
            self.skip_trivia()?;
            if self.peek() != Some('(') {
                if name_parts.is_empty() {
                    name_offset = segment_offset;
                }
                name_parts.push(segment.to_owned());
                continue;
            }

            if !name_parts.is_empty() {
                let collection = name_parts.join(".");
                validate_collection_name(&collection, name_offset)?;
                let operation = self.parse_collection_call(segment_offset, segment)?;
                return Ok(MongoCommand {
                    collection: Some(collection),
                    operation,
                });
            }

            match segment {
                "getCollectionNames" => {
                    self.parse_arguments(segment)?
                        .check_count("getCollectionNames()", 0, 0)?;
                    return Ok(MongoCommand {
                        collection: None,
                        operation: MongoOperation::ListCollections,
                    });
                }
                "getCollection" => {
                    let arguments = self.parse_arguments(segment)?;
                    arguments.check_count("getCollection(name)", 1, 1)?;
                    let close = arguments.close;
                    let name = required_string(arguments.values.into_iter().next(), "collection name", close)?;
                    name_parts.push(name);
                    name_offset = segment_offset;
                }
                _ => {
                    return Err(ParseError::new(
                        format!(
                            "unsupported database method {}; supported are getCollection and getCollectionNames, \
                             or write db.<collection>.<method>(...)",
                            quote(segment)
                        ),
                        segment_offset,
                    ));
                }
            }
        }
    }

    /// Parses a collection method call, whose name was just read, and the cursor methods after it.
    fn parse_collection_call(&mut self, method_offset: usize, method: &str) -> Result<MongoOperation, ParseError> {
        if !COLLECTION_METHODS.contains(&method) {
            return Err(ParseError::new(
                format!(
                    "unsupported method {}; supported methods are {}",
                    quote(method),
                    COLLECTION_METHODS.join(", ")
                ),
                method_offset,
            ));
        }
        let arguments = self.parse_arguments(method)?;
        let operation = build_operation(method, method_offset, arguments)?;
        self.parse_cursor_methods(operation)
    }

    /// Parses `.sort()`, `.limit()` and the other methods chained after find or aggregate.
    fn parse_cursor_methods(&mut self, mut operation: MongoOperation) -> Result<MongoOperation, ParseError> {
        // Name of the method, such as toArray, that returned a result rather than a cursor.
        let mut result_method: Option<&str> = None;
        loop {
            self.skip_trivia()?;
            if !self.eat('.') {
                return Ok(operation);
            }
            self.skip_trivia()?;
            let Some((method_offset, method)) = self.scan_identifier() else {
                return Err(ParseError::new(
                    format!("expected a method name after `.` but found {}", self.describe_next()),
                    self.pos,
                ));
            };

            if let Some(previous) = result_method {
                return Err(ParseError::new(
                    format!("`.{method}()` cannot follow `.{previous}()`, which returns a result rather than a cursor"),
                    method_offset,
                ));
            }
            let supported: &[&str] = match operation {
                MongoOperation::Find { .. } => &["sort", "limit", "skip", "projection", "count", "toArray", "pretty"],
                MongoOperation::Aggregate { .. } => &["toArray", "pretty"],
                _ => &[],
            };
            if !supported.contains(&method) {
                let message = if supported.is_empty() {
                    format!(
                        "`.{method}()` cannot follow {}(), which returns a result rather than a cursor",
                        operation.name()
                    )
                } else {
                    format!(
                        "unsupported cursor method {} after {}(); supported are {}",
                        quote(method),
                        operation.name(),
                        supported.join(", ")
                    )
                };
                return Err(ParseError::new(message, method_offset));
            }

            let arguments = self.parse_arguments(method)?;
            if matches!(method, "count" | "toArray") {
                result_method = Some(method);
            }
            operation = apply_cursor_method(operation, method, arguments)?;
        }
    }
}

/// Builds the operation of a collection method call from its arguments.
fn build_operation(method: &str, method_offset: usize, arguments: Arguments) -> Result<MongoOperation, ParseError> {
    let close = arguments.close;
    match method {
        "find" => {
            arguments.check_count("find(filter?, projection?)", 0, 2)?;
            let mut values = arguments.values.into_iter();
            Ok(MongoOperation::Find {
                filter: optional_document(values.next(), "filter")?.unwrap_or_default(),
                projection: optional_document(values.next(), "projection")?,
                sort: None,
                skip: None,
                limit: None,
            })
        }
        "findOne" => {
            arguments.check_count("findOne(filter?, projection?)", 0, 2)?;
            let mut values = arguments.values.into_iter();
            Ok(MongoOperation::FindOne {
                filter: optional_document(values.next(), "filter")?.unwrap_or_default(),
                projection: optional_document(values.next(), "projection")?,
                sort: None,
                skip: None,
            })
        }
        "aggregate" => build_aggregate(arguments),
        "countDocuments" | "count" => {
            arguments.check_count(&format!("{method}(filter?, options?)"), 0, 2)?;
            let mut values = arguments.values.into_iter();
            let filter = optional_document(values.next(), "filter")?.unwrap_or_default();
            let (skip, limit) = count_options(values.next(), method)?;
            Ok(MongoOperation::CountDocuments { filter, skip, limit })
        }
        "estimatedDocumentCount" => {
            arguments.check_count("estimatedDocumentCount()", 0, 0)?;
            Ok(MongoOperation::EstimatedDocumentCount)
        }
        "distinct" => {
            arguments.check_count("distinct(field, filter?)", 1, 2)?;
            let mut values = arguments.values.into_iter();
            Ok(MongoOperation::Distinct {
                field: required_string(values.next(), "field", close)?,
                filter: optional_document(values.next(), "filter")?.unwrap_or_default(),
            })
        }
        "insertOne" => {
            arguments.check_count("insertOne(document)", 1, 1)?;
            let document = required_document(arguments.values.into_iter().next(), "document", close)?;
            Ok(MongoOperation::InsertOne { document })
        }
        "insertMany" => {
            arguments.check_count("insertMany(documents)", 1, 1)?;
            let documents = document_list(arguments.values.into_iter().next(), "documents", false, close)?;
            Ok(MongoOperation::InsertMany { documents })
        }
        "updateOne" | "updateMany" => {
            arguments.check_count(&format!("{method}(filter, update, options?)"), 2, 3)?;
            let mut values = arguments.values.into_iter();
            let filter = required_document(values.next(), "filter", close)?;
            let update = update_spec(values.next(), close)?;
            let upsert = upsert_option(values.next(), method)?;
            if method == "updateOne" {
                Ok(MongoOperation::UpdateOne { filter, update, upsert })
            } else {
                Ok(MongoOperation::UpdateMany { filter, update, upsert })
            }
        }
        "replaceOne" => {
            arguments.check_count("replaceOne(filter, replacement, options?)", 2, 3)?;
            let mut values = arguments.values.into_iter();
            let filter = required_document(values.next(), "filter", close)?;
            let replacement = replacement_document(values.next(), close)?;
            let upsert = upsert_option(values.next(), method)?;
            Ok(MongoOperation::ReplaceOne {
                filter,
                replacement,
                upsert,
            })
        }
        "deleteOne" | "deleteMany" => {
            arguments.check_count(&format!("{method}(filter)"), 1, 1)?;
            let filter = required_document(arguments.values.into_iter().next(), "filter", close)?;
            if method == "deleteOne" {
                Ok(MongoOperation::DeleteOne { filter })
            } else {
                Ok(MongoOperation::DeleteMany { filter })
            }
        }
        _ => Err(ParseError::new(
            format!("unsupported method {}", quote(method)),
            method_offset,
        )),
    }
}

/// Builds an aggregate from `aggregate(pipeline, options?)` or, as mongosh also accepts, `aggregate(stage, ...)`.
fn build_aggregate(arguments: Arguments) -> Result<MongoOperation, ParseError> {
    let close = arguments.close;
    let mut values = arguments.values.into_iter();
    let Some(first) = values.next() else {
        return Err(ParseError::new(
            "missing argument for aggregate(pipeline, options?)",
            close,
        ));
    };

    if let Bson::Document(first_stage) = first.value {
        let mut pipeline = vec![first_stage];
        for argument in values {
            let Bson::Document(stage) = argument.value else {
                return Err(ParseError::new(
                    format!(
                        "every argument of aggregate(stage, ...) must be a pipeline stage document but this one has \
                         type {}",
                        type_name(&argument.value)
                    ),
                    argument.offset,
                ));
            };
            pipeline.push(stage);
        }
        return Ok(MongoOperation::Aggregate {
            pipeline,
            options: None,
        });
    }

    let pipeline = document_list(Some(first), "pipeline", true, close)?;
    let options = optional_document(values.next(), "options")?;
    if let Some(extra) = values.next() {
        return Err(ParseError::new(
            "too many arguments for aggregate(pipeline, options?)",
            extra.offset,
        ));
    }
    Ok(MongoOperation::Aggregate { pipeline, options })
}

/// Applies a cursor method that [`Parser::parse_cursor_methods`] has checked to be valid for the operation.
fn apply_cursor_method(
    mut operation: MongoOperation,
    method: &str,
    arguments: Arguments,
) -> Result<MongoOperation, ParseError> {
    let close = arguments.close;
    if method == "count" {
        arguments.check_count("count()", 0, 0)?;
        return Ok(count_from_find(operation));
    }
    if matches!(method, "toArray" | "pretty") {
        arguments.check_count(&format!("{method}()"), 0, 0)?;
        return Ok(operation);
    }

    arguments.check_count(&format!("{method}(value)"), 1, 1)?;
    let argument = arguments.values.into_iter().next();
    if let MongoOperation::Find {
        projection,
        sort,
        skip,
        limit,
        ..
    } = &mut operation
    {
        match method {
            "sort" => *sort = Some(required_document(argument, "sort", close)?),
            "projection" => *projection = Some(required_document(argument, "projection", close)?),
            "skip" => *skip = Some(skip_value(argument, close)?),
            "limit" => *limit = Some(limit_value(argument, close)?),
            _ => {
                return Err(ParseError::new(
                    format!("unsupported cursor method {}", quote(method)),
                    close,
                ));
            }
        }
    }
    Ok(operation)
}

/// Turns `find(...).count()` into countDocuments with the same filter, skip and limit.
fn count_from_find(operation: MongoOperation) -> MongoOperation {
    match operation {
        MongoOperation::Find {
            filter, skip, limit, ..
        } => MongoOperation::CountDocuments {
            filter,
            skip,
            limit: limit.and_then(count_limit_from_find_limit),
        },
        other => other,
    }
}

/// Converts a find limit into a count limit. A find limit of 0 means no limit, and a negative limit `-n` returns
/// at most `n` documents in one batch, so the count is limited to `n`.
fn count_limit_from_find_limit(limit: i64) -> Option<u64> {
    if limit == 0 { None } else { Some(limit.unsigned_abs()) }
}

// ---------------------------------------------------------------------------------------------------------------
// Shell syntax: values
// ---------------------------------------------------------------------------------------------------------------

impl Parser<'_> {
    fn parse_value(&mut self) -> Result<Bson, ParseError> {
        self.skip_trivia()?;
        let start = self.pos;
        match self.peek() {
            // An object literal cannot start with `{{`, so this is always a placeholder.
            Some('{') if self.rest().starts_with("{{") => self.parse_placeholder(),
            Some('{') => self.parse_object(),
            Some('[') => self.parse_array(),
            Some('"' | '\'') => Ok(Bson::String(self.parse_string()?)),
            Some('/') => self.parse_regex(),
            Some('-' | '0'..='9') => self.parse_number(),
            Some('`') => Err(ParseError::new(
                "template literals are not supported; use a single- or double-quoted string",
                start,
            )),
            Some(c) if is_identifier_start(c) => self.parse_word_value(),
            _ => Err(ParseError::new(
                format!("expected a value but found {}", self.describe_next()),
                start,
            )),
        }
    }

    /// Parses `{{name}}` and returns the value bound to `name`.
    fn parse_placeholder(&mut self) -> Result<Bson, ParseError> {
        let start = self.pos;
        let rest = self.rest();
        let Some(close) = rest.find("}}") else {
            return Err(ParseError::new("unterminated parameter: missing `}}`", start));
        };
        let name = rest.get(2..close).unwrap_or_default().trim();
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.len() <= 64;
        if !valid {
            return Err(ParseError::new(
                format!("{} is not a parameter name; use letters, digits and `_`", quote(name)),
                start,
            ));
        }
        if self.collect {
            self.used.insert(name.to_owned());
            self.pos += close + 2;
            return Ok(Bson::Null);
        }
        let Some(value) = self.params.get(name) else {
            return Err(ParseError::new(
                format!("the query uses the parameter {{{{{name}}}}} but no value was given for it"),
                start,
            ));
        };
        self.used.insert(name.to_owned());
        self.pos += close + 2;
        Ok(value.clone())
    }

    fn parse_object(&mut self) -> Result<Bson, ParseError> {
        let open = self.pos;
        self.enter(open)?;
        self.pos += 1;
        let mut document = Document::new();
        loop {
            self.skip_trivia()?;
            if self.eat('}') {
                break;
            }

            let key_offset = self.pos;
            let key = self.parse_key()?;
            if key.contains('\0') {
                return Err(ParseError::new("keys must not contain a NUL character", key_offset));
            }
            if document.contains_key(&key) {
                return Err(ParseError::new(format!("duplicate key {}", quote(&key)), key_offset));
            }
            self.expect_char(':', &format!("after key {}", quote(&key)))?;
            let value = self.parse_value()?;
            document.insert(key, value);

            self.skip_trivia()?;
            if self.eat('}') {
                break;
            }
            if !self.eat(',') {
                return Err(ParseError::new(
                    format!("expected `,` or `}}` in the object but found {}", self.describe_next()),
                    self.pos,
                ));
            }
        }
        self.leave();

        if !document.keys().any(|key| EXTENDED_JSON_KEYS.contains(&key.as_str())) {
            return Ok(Bson::Document(document));
        }
        // The members were already converted, so `{$numberLong: "5"}` inside `$date` is Int64 now. Relaxed
        // Extended JSON writes such values back as plain JSON numbers, which the `bson` converter accepts.
        let json = Bson::Document(document).into_relaxed_extjson();
        Bson::try_from(json).map_err(|error| ParseError::new(format!("invalid Extended JSON value: {error}"), open))
    }

    /// Parses an object key: a quoted string or an unquoted run of letters, digits, `_`, `$` and `.`.
    fn parse_key(&mut self) -> Result<String, ParseError> {
        if matches!(self.peek(), Some('"' | '\'')) {
            return self.parse_string();
        }
        let rest = self.rest();
        let is_key_char = |c: char| is_identifier_part(c) || c == '.';
        let end = rest.find(|c: char| !is_key_char(c)).unwrap_or(rest.len());
        if end == 0 || rest.starts_with('.') {
            return Err(ParseError::new(
                format!("expected a key but found {}", self.describe_next()),
                self.pos,
            ));
        }
        self.pos += end;
        Ok(rest.get(..end).unwrap_or(rest).to_owned())
    }

    fn parse_array(&mut self) -> Result<Bson, ParseError> {
        let open = self.pos;
        self.enter(open)?;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_trivia()?;
            if self.eat(']') {
                break;
            }
            items.push(self.parse_value()?);
            self.skip_trivia()?;
            if self.eat(']') {
                break;
            }
            if !self.eat(',') {
                return Err(ParseError::new(
                    format!("expected `,` or `]` in the array but found {}", self.describe_next()),
                    self.pos,
                ));
            }
        }
        self.leave();
        Ok(Bson::Array(items))
    }

    /// Parses a single- or double-quoted string with JavaScript escapes. Escapes that JavaScript would silently
    /// reduce to the bare character, such as `\d`, are errors because they usually mean a lost regex backslash.
    fn parse_string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let Some(quote_char) = self.peek() else {
            return Err(ParseError::new("expected a string but found end of input", start));
        };
        self.pos += quote_char.len_utf8();
        let unterminated = || ParseError::new(format!("unterminated string: missing closing `{quote_char}`"), start);

        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(unterminated());
            };
            if c == quote_char {
                self.pos += c.len_utf8();
                return Ok(value);
            }
            if c == '\n' || c == '\r' {
                return Err(unterminated());
            }
            if c == '\\' {
                let escape_offset = self.pos;
                self.pos += 1;
                self.parse_escape(escape_offset, &mut value, &unterminated)?;
            } else {
                value.push(c);
                self.pos += c.len_utf8();
            }
        }
    }

    /// Parses the escape sequence after a backslash at `escape_offset` and appends its character to `value`.
    fn parse_escape(
        &mut self,
        escape_offset: usize,
        value: &mut String,
        unterminated: &dyn Fn() -> ParseError,
    ) -> Result<(), ParseError> {
        let Some(c) = self.peek() else {
            return Err(unterminated());
        };
        self.pos += c.len_utf8();
        let simple = match c {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '0' if !self.peek().is_some_and(|next| next.is_ascii_digit()) => Some('\0'),
            '"' | '\'' | '\\' | '/' => Some(c),
            _ => None,
        };
        if let Some(character) = simple {
            value.push(character);
            return Ok(());
        }

        match c {
            // A backslash before a line break continues the string on the next line.
            '\n' | '\u{2028}' | '\u{2029}' => Ok(()),
            '\r' => {
                self.eat('\n');
                Ok(())
            }
            'x' => {
                let code = self.parse_hex_digits(2, escape_offset)?;
                value.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                Ok(())
            }
            'u' => {
                let character = self.parse_unicode_escape(escape_offset)?;
                value.push(character);
                Ok(())
            }
            _ => Err(ParseError::new(
                format!(
                    "invalid escape sequence `\\{c}`; write `\\\\{c}` for a literal backslash, for example in a \
                     $regex pattern"
                ),
                escape_offset,
            )),
        }
    }

    fn parse_hex_digits(&mut self, count: usize, escape_offset: usize) -> Result<u32, ParseError> {
        let digits = self.rest().get(..count).unwrap_or_default();
        if digits.len() != count || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(ParseError::new(
                format!("invalid escape sequence: expected {count} hexadecimal digits"),
                escape_offset,
            ));
        }
        self.pos += count;
        u32::from_str_radix(digits, 16).map_err(|_| ParseError::new("invalid hexadecimal escape", escape_offset))
    }

    /// Parses the rest of `\uXXXX`, `\u{X…}` or a UTF-16 surrogate pair `\uD83D\uDE00`.
    fn parse_unicode_escape(&mut self, escape_offset: usize) -> Result<char, ParseError> {
        let invalid = || ParseError::new("invalid unicode escape sequence", escape_offset);
        if self.eat('{') {
            let rest = self.rest();
            let end = rest.find('}').ok_or_else(invalid)?;
            let digits = rest.get(..end).unwrap_or_default();
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return Err(invalid());
            }
            let code = u32::from_str_radix(digits, 16).map_err(|_| invalid())?;
            self.pos += end + 1;
            return char::from_u32(code).ok_or_else(invalid);
        }

        let code = self.parse_hex_digits(4, escape_offset)?;
        if !(0xD800..0xDC00).contains(&code) {
            return char::from_u32(code).ok_or_else(invalid);
        }
        // A high surrogate must be followed by an escaped low surrogate.
        if !self.rest().starts_with("\\u") {
            return Err(invalid());
        }
        self.pos += 2;
        let low = self.parse_hex_digits(4, escape_offset)?;
        if !(0xDC00..0xE000).contains(&low) {
            return Err(invalid());
        }
        char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)).ok_or_else(invalid)
    }

    /// Parses a regex literal `/pattern/flags`. The pattern is kept verbatim, escapes included, for the server's
    /// regex engine. Flags must be ones that MongoDB supports and are stored in alphabetical order.
    fn parse_regex(&mut self) -> Result<Bson, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let pattern_start = self.pos;
        let unterminated = || ParseError::new("unterminated regex literal: missing closing `/`", start);

        let mut in_class = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(unterminated());
            };
            if is_line_terminator(c) {
                return Err(unterminated());
            }
            self.pos += c.len_utf8();
            match c {
                '\\' => match self.peek() {
                    Some(escaped) if !is_line_terminator(escaped) => self.pos += escaped.len_utf8(),
                    _ => return Err(unterminated()),
                },
                '[' => in_class = true,
                ']' => in_class = false,
                '/' if !in_class => break,
                _ => {}
            }
        }
        let pattern = self
            .text
            .get(pattern_start..self.pos - 1)
            .unwrap_or_default()
            .to_owned();
        if pattern.contains('\0') {
            return Err(ParseError::new(
                "regex patterns must not contain a NUL character",
                start,
            ));
        }

        let mut options = String::new();
        while let Some(flag) = self.peek().filter(|&c| is_identifier_part(c)) {
            if !REGEX_OPTIONS.contains(flag) {
                return Err(ParseError::new(
                    format!("unsupported regex flag `{flag}`; the supported flags are i, m, s, u and x"),
                    self.pos,
                ));
            }
            if options.contains(flag) {
                return Err(ParseError::new(format!("duplicate regex flag `{flag}`"), self.pos));
            }
            options.push(flag);
            self.pos += flag.len_utf8();
        }
        let options: String = REGEX_OPTIONS.chars().filter(|&flag| options.contains(flag)).collect();
        Ok(Bson::RegularExpression(Regex { pattern, options }))
    }

    /// Parses a number: Int32 when an integer fits, else Int64, and Double for fractions and exponents.
    fn parse_number(&mut self) -> Result<Bson, ParseError> {
        let start = self.pos;
        let negative = self.eat('-');
        if negative && self.rest().starts_with("Infinity") {
            self.pos += "Infinity".len();
            if self.peek().is_some_and(is_identifier_part) {
                return Err(self.invalid_number(start));
            }
            return Ok(Bson::Double(f64::NEG_INFINITY));
        }

        let digits_start = self.pos;
        self.skip_digits();
        if self.pos == digits_start {
            return Err(ParseError::new(
                format!("expected a number after `-` but found {}", self.describe_next()),
                self.pos,
            ));
        }
        if self.pos - digits_start > 1 && self.text.as_bytes().get(digits_start) == Some(&b'0') {
            return Err(ParseError::new(
                format!(
                    "numbers with leading zeros are not supported: {}",
                    self.number_text(start)
                ),
                start,
            ));
        }

        let mut is_integer = true;
        if self.peek() == Some('.') && self.rest().as_bytes().get(1).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
            self.skip_digits();
            is_integer = false;
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.pos += 1;
            if !self.eat('+') {
                self.eat('-');
            }
            let exponent_start = self.pos;
            self.skip_digits();
            if self.pos == exponent_start {
                return Err(self.invalid_number(start));
            }
            is_integer = false;
        }
        if self.peek().is_some_and(|c| is_identifier_part(c) || c == '.') {
            return Err(self.invalid_number(start));
        }

        let text = self.text.get(start..self.pos).unwrap_or_default();
        if !is_integer {
            return match text.parse::<f64>() {
                Ok(number) if number.is_finite() => Ok(Bson::Double(number)),
                _ => Err(ParseError::new(
                    format!("number {} is out of range for a double", quote(text)),
                    start,
                )),
            };
        }
        let Ok(integer) = text.parse::<i64>() else {
            return Err(ParseError::new(
                format!(
                    "integer {} is out of range for a 64-bit integer; use NumberDecimal(\"{text}\") for larger values",
                    quote(text)
                ),
                start,
            ));
        };
        Ok(match i32::try_from(integer) {
            Ok(small) => Bson::Int32(small),
            Err(_) => Bson::Int64(integer),
        })
    }

    fn skip_digits(&mut self) {
        let length = self.rest().bytes().take_while(u8::is_ascii_digit).count();
        self.pos += length;
    }

    /// Returns the number-like text starting at `start`, for error messages.
    fn number_text(&self, start: usize) -> String {
        let rest = self.text.get(start..).unwrap_or_default();
        let end = rest
            .char_indices()
            .skip(1)
            .find(|&(_, c)| !(is_identifier_part(c) || c == '.'))
            .map_or(rest.len(), |(index, _)| index);
        quote(rest.get(..end).unwrap_or(rest))
    }

    fn invalid_number(&self, start: usize) -> ParseError {
        ParseError::new(format!("invalid number {}", self.number_text(start)), start)
    }

    /// Parses a value that starts with a word: a keyword such as `true`, or a constructor such as `ObjectId(…)`.
    fn parse_word_value(&mut self) -> Result<Bson, ParseError> {
        let Some((start, word)) = self.scan_identifier() else {
            return Err(ParseError::new(
                format!("expected a value but found {}", self.describe_next()),
                self.pos,
            ));
        };
        match word {
            "true" => Ok(Bson::Boolean(true)),
            "false" => Ok(Bson::Boolean(false)),
            "null" => Ok(Bson::Null),
            // The BSON specification deprecates the undefined type, so `undefined` becomes null.
            "undefined" => Ok(Bson::Null),
            "NaN" => Ok(Bson::Double(f64::NAN)),
            "Infinity" => Ok(Bson::Double(f64::INFINITY)),
            "new" => {
                self.skip_trivia()?;
                let Some((name_offset, name)) = self.scan_identifier() else {
                    return Err(ParseError::new(
                        format!(
                            "expected a constructor name after `new` but found {}",
                            self.describe_next()
                        ),
                        self.pos,
                    ));
                };
                if !CONSTRUCTORS.contains(&name) {
                    return Err(ParseError::new(
                        format!(
                            "unsupported constructor {}; supported are {}",
                            quote(name),
                            CONSTRUCTORS.join(", ")
                        ),
                        name_offset,
                    ));
                }
                self.parse_constructor(start, &format!("new {name}"), name)
            }
            "function" => Err(ParseError::new(
                "JavaScript functions (`function`) are not supported; write the query with literal values and \
                 operators",
                start,
            )),
            _ if CONSTRUCTORS.contains(&word) => self.parse_constructor(start, word, word),
            _ => Err(ParseError::new(
                format!(
                    "unsupported expression {}: JavaScript variables, functions and expressions are not \
                     supported; write a literal value or a constructor such as ObjectId(\"…\")",
                    self.describe_expression(start)
                ),
                start,
            )),
        }
    }

    /// Describes a dotted expression such as `Math.random` that starts at `start`, for error messages.
    fn describe_expression(&self, start: usize) -> String {
        let rest = self.text.get(start..).unwrap_or_default();
        let end = rest
            .find(|c: char| !(is_identifier_part(c) || c == '.'))
            .unwrap_or(rest.len());
        quote(rest.get(..end).unwrap_or(rest).trim_end_matches('.'))
    }

    /// Parses the arguments of constructor `name` and builds its value. `display_name` is `name` or `new name`,
    /// as written, and `start` is its offset.
    fn parse_constructor(&mut self, start: usize, display_name: &str, name: &str) -> Result<Bson, ParseError> {
        self.enter(start)?;
        let arguments = self.parse_arguments(name)?;
        self.leave();
        build_constructor_value(name, display_name, start, arguments)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Shell syntax: constructors
// ---------------------------------------------------------------------------------------------------------------

/// Builds the value of constructor `name` such as ObjectId or ISODate, which starts at `start`.
fn build_constructor_value(
    name: &str,
    display_name: &str,
    start: usize,
    arguments: Arguments,
) -> Result<Bson, ParseError> {
    match name {
        "ObjectId" => object_id_value(display_name, start, arguments),
        "ISODate" | "Date" => date_value(display_name, start, arguments),
        "NumberLong" => {
            arguments.check_count(&format!("{display_name}(value)"), 1, 1)?;
            let argument = first_argument(arguments)?;
            number_long_value(display_name, argument)
        }
        "NumberInt" => {
            arguments.check_count(&format!("{display_name}(value)"), 1, 1)?;
            let argument = first_argument(arguments)?;
            number_int_value(display_name, argument)
        }
        "NumberDecimal" | "Decimal128" => {
            arguments.check_count(&format!("{display_name}(\"digits\")"), 1, 1)?;
            let argument = first_argument(arguments)?;
            decimal_value(display_name, argument)
        }
        "Timestamp" => timestamp_value(display_name, arguments),
        "BinData" => binary_value(display_name, arguments),
        "UUID" => {
            arguments.check_count(&format!("{display_name}(\"hex\")"), 1, 1)?;
            let argument = first_argument(arguments)?;
            uuid_value(display_name, argument)
        }
        "MinKey" => {
            arguments.check_count(&format!("{display_name}()"), 0, 0)?;
            Ok(Bson::MinKey)
        }
        "MaxKey" => {
            arguments.check_count(&format!("{display_name}()"), 0, 0)?;
            Ok(Bson::MaxKey)
        }
        _ => Err(ParseError::new(
            format!("unsupported constructor {}", quote(name)),
            start,
        )),
    }
}

/// Returns the first argument of a call whose argument count was already checked to be at least one.
fn first_argument(arguments: Arguments) -> Result<Argument, ParseError> {
    let close = arguments.close;
    arguments
        .values
        .into_iter()
        .next()
        .ok_or_else(|| ParseError::new("missing argument", close))
}

fn object_id_value(display_name: &str, start: usize, arguments: Arguments) -> Result<Bson, ParseError> {
    if arguments.values.is_empty() {
        return Err(ParseError::new(
            format!(
                "{display_name}() without an argument is not supported because it generates a new id; pass 24 \
                 hexadecimal characters such as {display_name}(\"507f1f77bcf86cd799439011\")"
            ),
            start,
        ));
    }
    arguments.check_count(&format!("{display_name}(\"hex\")"), 1, 1)?;
    let argument = first_argument(arguments)?;
    let invalid = || {
        ParseError::new(
            format!(
                "invalid ObjectId argument {}: expected a string of 24 hexadecimal characters",
                describe_value(&argument.value)
            ),
            argument.offset,
        )
    };
    let Bson::String(hex_text) = &argument.value else {
        return Err(invalid());
    };
    if hex_text.len() != 24 || !hex_text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    ObjectId::parse_str(hex_text).map(Bson::ObjectId).map_err(|_| invalid())
}

/// Builds a date from `ISODate("…")`, `Date("…")` or `new Date("…")` with an RFC 3339 date-time or a
/// `YYYY-MM-DD` date (midnight UTC), or from an integer of milliseconds since the Unix epoch.
fn date_value(display_name: &str, start: usize, arguments: Arguments) -> Result<Bson, ParseError> {
    if arguments.values.is_empty() {
        return Err(ParseError::new(
            format!(
                "{display_name}() without an argument is not supported because its value depends on the clock; \
                 pass a date such as {display_name}(\"2024-01-31T00:00:00Z\")"
            ),
            start,
        ));
    }
    arguments.check_count(&format!("{display_name}(date)"), 1, 1)?;
    let argument = first_argument(arguments)?;
    let millis = match &argument.value {
        Bson::Int32(millis) => i64::from(*millis),
        Bson::Int64(millis) => *millis,
        Bson::String(text) => date_millis(text).ok_or_else(|| {
            ParseError::new(
                format!(
                    "invalid date {}: expected an RFC 3339 date-time such as \"2024-01-31T12:00:00Z\" or a date \
                     such as \"2024-01-31\"",
                    quote(text)
                ),
                argument.offset,
            )
        })?,
        other => {
            return Err(ParseError::new(
                format!(
                    "{display_name} expects a date string or milliseconds since the Unix epoch but the argument \
                     has type {}",
                    type_name(other)
                ),
                argument.offset,
            ));
        }
    };
    Ok(Bson::DateTime(DateTime::from_millis(millis)))
}

/// Converts an RFC 3339 date-time or a `YYYY-MM-DD` date (midnight UTC) into milliseconds since the Unix epoch.
/// Digits beyond milliseconds are truncated because BSON dates have millisecond precision.
fn date_millis(text: &str) -> Option<i64> {
    if let Ok(datetime) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(datetime.timestamp_millis());
    }
    let is_date_only = text.len() == 10
        && text.bytes().enumerate().all(|(index, byte)| {
            if index == 4 || index == 7 {
                byte == b'-'
            } else {
                byte.is_ascii_digit()
            }
        });
    if !is_date_only {
        return None;
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis())
}

fn number_long_value(display_name: &str, argument: Argument) -> Result<Bson, ParseError> {
    let value = match &argument.value {
        Bson::Int32(value) => Some(i64::from(*value)),
        Bson::Int64(value) => Some(*value),
        Bson::String(text) => text.parse::<i64>().ok(),
        _ => None,
    };
    value.map(Bson::Int64).ok_or_else(|| {
        ParseError::new(
            format!(
                "invalid {display_name} argument {}: expected an integer or a string of digits between {} and {}",
                describe_value(&argument.value),
                i64::MIN,
                i64::MAX
            ),
            argument.offset,
        )
    })
}

fn number_int_value(display_name: &str, argument: Argument) -> Result<Bson, ParseError> {
    let value = match &argument.value {
        Bson::Int32(value) => Some(*value),
        Bson::Int64(value) => i32::try_from(*value).ok(),
        Bson::String(text) => text.parse::<i32>().ok(),
        _ => None,
    };
    value.map(Bson::Int32).ok_or_else(|| {
        ParseError::new(
            format!(
                "invalid {display_name} argument {}: expected an integer or a string of digits between {} and {}",
                describe_value(&argument.value),
                i32::MIN,
                i32::MAX
            ),
            argument.offset,
        )
    })
}

/// Builds a Decimal128 from a string, which keeps every digit, or from an integer.
fn decimal_value(display_name: &str, argument: Argument) -> Result<Bson, ParseError> {
    let text = match &argument.value {
        Bson::String(text) => text.clone(),
        Bson::Int32(value) => value.to_string(),
        Bson::Int64(value) => value.to_string(),
        Bson::Double(_) => {
            return Err(ParseError::new(
                format!(
                    "{display_name} needs its value as a string, such as {display_name}(\"0.1\"), so that every \
                     digit is kept"
                ),
                argument.offset,
            ));
        }
        other => {
            return Err(ParseError::new(
                format!(
                    "{display_name} expects a string of digits but the argument has type {}",
                    type_name(other)
                ),
                argument.offset,
            ));
        }
    };
    let invalid = || {
        ParseError::new(
            format!(
                "invalid decimal {}: expected a number such as \"1234.5678\"",
                quote(&text)
            ),
            argument.offset,
        )
    };
    // The parser of `bson` 2.15 reads "" and "-" as zero, so a value without digits must be NaN or Infinity.
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(&text);
    let is_special = ["NaN", "Inf", "Infinity"]
        .iter()
        .any(|word| unsigned.eq_ignore_ascii_case(word));
    if !is_special && !text.bytes().any(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    Decimal128::from_str(&text).map(Bson::Decimal128).map_err(|_| invalid())
}

/// Builds a timestamp from `Timestamp(t, i)` or `Timestamp({t: …, i: …})`, where `t` is seconds since the Unix
/// epoch and `i` the increment, both unsigned 32-bit integers.
fn timestamp_value(display_name: &str, arguments: Arguments) -> Result<Bson, ParseError> {
    let signature = format!("{display_name}(seconds, increment)");
    let close = arguments.close;
    let mut values = arguments.values.into_iter();
    let (time, increment) = match (values.next(), values.next(), values.next()) {
        (Some(time), Some(increment), None) => (time, increment),
        (
            Some(Argument {
                value: Bson::Document(parts),
                offset,
            }),
            None,
            None,
        ) => {
            let time = parts.get("t").cloned().unwrap_or(Bson::Null);
            let increment = parts.get("i").cloned().unwrap_or(Bson::Null);
            (
                Argument { value: time, offset },
                Argument {
                    value: increment,
                    offset,
                },
            )
        }
        (Some(_), Some(_), Some(extra)) => {
            return Err(ParseError::new(
                format!("too many arguments for {signature}"),
                extra.offset,
            ));
        }
        _ => return Err(ParseError::new(format!("missing argument for {signature}"), close)),
    };
    let to_u32 = |argument: &Argument, role: &str| {
        integer_value(&argument.value)
            .and_then(|value| u32::try_from(value).ok())
            .ok_or_else(|| {
                ParseError::new(
                    format!(
                        "invalid {display_name} {role} {}: expected an integer between 0 and {}",
                        describe_value(&argument.value),
                        u32::MAX
                    ),
                    argument.offset,
                )
            })
    };
    Ok(Bson::Timestamp(Timestamp {
        time: to_u32(&time, "seconds")?,
        increment: to_u32(&increment, "increment")?,
    }))
}

fn binary_value(display_name: &str, arguments: Arguments) -> Result<Bson, ParseError> {
    arguments.check_count(&format!("{display_name}(subtype, \"base64\")"), 2, 2)?;
    let close = arguments.close;
    let mut values = arguments.values.into_iter();
    let (Some(subtype), Some(data)) = (values.next(), values.next()) else {
        return Err(ParseError::new(
            format!("missing argument for {display_name}(subtype, \"base64\")"),
            close,
        ));
    };

    let subtype_byte = integer_value(&subtype.value)
        .and_then(|value| u8::try_from(value).ok())
        .ok_or_else(|| {
            ParseError::new(
                format!(
                    "invalid {display_name} subtype {}: expected an integer between 0 and 255",
                    describe_value(&subtype.value)
                ),
                subtype.offset,
            )
        })?;
    let Bson::String(encoded) = &data.value else {
        return Err(ParseError::new(
            format!(
                "{display_name} expects base64 data as a string but the argument has type {}",
                type_name(&data.value)
            ),
            data.offset,
        ));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|error| ParseError::new(format!("invalid base64 in {display_name}: {error}"), data.offset))?;
    Ok(Bson::Binary(Binary {
        subtype: BinarySubtype::from(subtype_byte),
        bytes,
    }))
}

/// Builds a binary of subtype 4 from 32 hexadecimal digits, with or without the hyphens of the 8-4-4-4-12 form.
fn uuid_value(display_name: &str, argument: Argument) -> Result<Bson, ParseError> {
    let invalid = || {
        ParseError::new(
            format!(
                "invalid {display_name} argument {}: expected 32 hexadecimal digits such as \
                 \"123e4567-e89b-12d3-a456-426614174000\"",
                describe_value(&argument.value)
            ),
            argument.offset,
        )
    };
    let Bson::String(text) = &argument.value else {
        return Err(invalid());
    };
    let has_hyphens = text.len() == 36
        && text
            .char_indices()
            .all(|(index, c)| matches!(index, 8 | 13 | 18 | 23) == (c == '-'));
    let digits: String = if has_hyphens {
        text.chars().filter(|&c| c != '-').collect()
    } else {
        text.clone()
    };
    if digits.len() != 32 {
        return Err(invalid());
    }
    let bytes = hex::decode(&digits).map_err(|_| invalid())?;
    Ok(Bson::Binary(Binary {
        subtype: BinarySubtype::Uuid,
        bytes,
    }))
}

// ---------------------------------------------------------------------------------------------------------------
// Arguments and fields shared by both forms
// ---------------------------------------------------------------------------------------------------------------

/// Returns the MongoDB `$type` alias of a value, for error messages.
fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::RegularExpression(_) => "regex",
        Bson::JavaScriptCode(_) => "javascript",
        Bson::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Timestamp(_) => "timestamp",
        Bson::Binary(_) => "binData",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        Bson::Symbol(_) => "symbol",
        Bson::Decimal128(_) => "decimal",
        Bson::Undefined => "undefined",
        Bson::MaxKey => "maxKey",
        Bson::MinKey => "minKey",
        Bson::DbPointer(_) => "dbPointer",
    }
}

/// Describes a value for an error message: numbers and strings as written, other values by type.
fn describe_value(value: &Bson) -> String {
    match value {
        Bson::Int32(number) => number.to_string(),
        Bson::Int64(number) => number.to_string(),
        Bson::Double(number) => number.to_string(),
        Bson::String(text) => quote(text),
        other => format!("of type {}", type_name(other)),
    }
}

/// Returns the value of an Int32 or an Int64. A Double without a fraction counts too, up to 2^53, because
/// JavaScript numbers are doubles.
fn integer_value(value: &Bson) -> Option<i64> {
    /// Largest magnitude up to which every integer is exactly representable as a double (2^53).
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;
    match value {
        Bson::Int32(number) => Some(i64::from(*number)),
        Bson::Int64(number) => Some(*number),
        Bson::Double(number) if number.fract() == 0.0 && number.abs() <= MAX_SAFE_INTEGER => Some(*number as i64),
        _ => None,
    }
}

/// Returns the document of an optional argument. A missing argument or null means none.
fn optional_document(argument: Option<Argument>, role: &str) -> Result<Option<Document>, ParseError> {
    let Some(argument) = argument else {
        return Ok(None);
    };
    match argument.value {
        Bson::Null => Ok(None),
        Bson::Document(document) => Ok(Some(document)),
        other => Err(ParseError::new(
            format!("{role} must be a document but has type {}", type_name(&other)),
            argument.offset,
        )),
    }
}

/// Returns the document of a required argument. `missing_offset` is reported when the argument is absent.
fn required_document(argument: Option<Argument>, role: &str, missing_offset: usize) -> Result<Document, ParseError> {
    let Some(argument) = argument else {
        return Err(ParseError::new(format!("missing {role}"), missing_offset));
    };
    match argument.value {
        Bson::Document(document) => Ok(document),
        other => Err(ParseError::new(
            format!("{role} must be a document but has type {}", type_name(&other)),
            argument.offset,
        )),
    }
}

fn required_string(argument: Option<Argument>, role: &str, missing_offset: usize) -> Result<String, ParseError> {
    let Some(argument) = argument else {
        return Err(ParseError::new(format!("missing {role}"), missing_offset));
    };
    match argument.value {
        Bson::String(text) => Ok(text),
        other => Err(ParseError::new(
            format!("{role} must be a string but has type {}", type_name(&other)),
            argument.offset,
        )),
    }
}

/// Returns an array of documents, such as a pipeline or the documents of insertMany.
fn document_list(
    argument: Option<Argument>,
    role: &str,
    allow_empty: bool,
    missing_offset: usize,
) -> Result<Vec<Document>, ParseError> {
    let Some(argument) = argument else {
        return Err(ParseError::new(format!("missing {role}"), missing_offset));
    };
    let Bson::Array(items) = argument.value else {
        return Err(ParseError::new(
            format!(
                "{role} must be an array of documents but has type {}",
                type_name(&argument.value)
            ),
            argument.offset,
        ));
    };
    if items.is_empty() && !allow_empty {
        return Err(ParseError::new(
            format!("{role} must contain at least one document"),
            argument.offset,
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| match item {
            Bson::Document(document) => Ok(document),
            other => Err(ParseError::new(
                format!("{role}[{index}] must be a document but has type {}", type_name(&other)),
                argument.offset,
            )),
        })
        .collect()
}

fn skip_value(argument: Option<Argument>, missing_offset: usize) -> Result<u64, ParseError> {
    let Some(argument) = argument else {
        return Err(ParseError::new("missing skip", missing_offset));
    };
    integer_value(&argument.value)
        .and_then(|value| u64::try_from(value).ok())
        .ok_or_else(|| {
            ParseError::new(
                format!(
                    "skip must be a non-negative integer but is {}",
                    describe_value(&argument.value)
                ),
                argument.offset,
            )
        })
}

/// Returns the limit of a find. Zero means no limit, and a negative limit requests a single batch.
fn limit_value(argument: Option<Argument>, missing_offset: usize) -> Result<i64, ParseError> {
    let Some(argument) = argument else {
        return Err(ParseError::new("missing limit", missing_offset));
    };
    integer_value(&argument.value).ok_or_else(|| {
        ParseError::new(
            format!("limit must be an integer but is {}", describe_value(&argument.value)),
            argument.offset,
        )
    })
}

/// Returns the limit of a countDocuments, which the server requires to be positive.
fn count_limit_value(argument: Argument) -> Result<u64, ParseError> {
    integer_value(&argument.value)
        .and_then(|value| u64::try_from(value).ok())
        .filter(|&value| value > 0)
        .ok_or_else(|| {
            ParseError::new(
                format!(
                    "limit must be a positive integer but is {}",
                    describe_value(&argument.value)
                ),
                argument.offset,
            )
        })
}

/// Reads the skip and limit of `countDocuments(filter, options)`. Other options have no field in
/// [`MongoOperation::CountDocuments`], so they are rejected instead of being dropped.
fn count_options(argument: Option<Argument>, method: &str) -> Result<(Option<u64>, Option<u64>), ParseError> {
    let offset = argument.as_ref().map_or(0, |argument| argument.offset);
    let Some(options) = optional_document(argument, "options")? else {
        return Ok((None, None));
    };
    let mut skip = None;
    let mut limit = None;
    for (key, value) in options {
        let option = Argument { value, offset };
        match key.as_str() {
            "skip" => skip = Some(skip_value(Some(option), offset)?),
            "limit" => limit = Some(count_limit_value(option)?),
            _ => {
                return Err(ParseError::new(
                    format!(
                        "unsupported option {} for {method}; only skip and limit are supported",
                        quote(&key)
                    ),
                    offset,
                ));
            }
        }
    }
    Ok((skip, limit))
}

/// Reads `{upsert: bool}` from the options of an update or replace. Other options are rejected because
/// [`MongoOperation`] has no field for them.
fn upsert_option(argument: Option<Argument>, method: &str) -> Result<bool, ParseError> {
    let offset = argument.as_ref().map_or(0, |argument| argument.offset);
    let Some(options) = optional_document(argument, "options")? else {
        return Ok(false);
    };
    let mut upsert = false;
    for (key, value) in options {
        match (key.as_str(), value) {
            ("upsert", Bson::Boolean(flag)) => upsert = flag,
            ("upsert", other) => {
                return Err(ParseError::new(
                    format!("upsert must be true or false but has type {}", type_name(&other)),
                    offset,
                ));
            }
            _ => {
                return Err(ParseError::new(
                    format!(
                        "unsupported option {} for {method}; only upsert is supported",
                        quote(&key)
                    ),
                    offset,
                ));
            }
        }
    }
    Ok(upsert)
}

/// Reads the update of updateOne or updateMany: a document of update operators or a pipeline array.
fn update_spec(argument: Option<Argument>, missing_offset: usize) -> Result<UpdateSpec, ParseError> {
    let Some(argument) = argument else {
        return Err(ParseError::new("missing update", missing_offset));
    };
    match argument.value {
        Bson::Document(document) => {
            if document.is_empty() {
                return Err(ParseError::new(
                    "update document must not be empty; use an operator such as {$set: {…}}",
                    argument.offset,
                ));
            }
            if let Some(key) = document.keys().find(|key| !key.starts_with('$')) {
                return Err(ParseError::new(
                    format!(
                        "update document key {} is not an update operator; use an operator such as $set, or \
                         replaceOne to replace the whole document",
                        quote(key)
                    ),
                    argument.offset,
                ));
            }
            Ok(UpdateSpec::Document(document))
        }
        Bson::Array(_) => {
            let pipeline = document_list(Some(argument), "update pipeline", true, missing_offset)?;
            Ok(UpdateSpec::Pipeline(pipeline))
        }
        other => Err(ParseError::new(
            format!(
                "update must be a document of update operators or a pipeline array but has type {}",
                type_name(&other)
            ),
            argument.offset,
        )),
    }
}

/// Reads the replacement of replaceOne, which must not contain update operators.
fn replacement_document(argument: Option<Argument>, missing_offset: usize) -> Result<Document, ParseError> {
    let offset = argument.as_ref().map_or(missing_offset, |argument| argument.offset);
    let replacement = required_document(argument, "replacement", missing_offset)?;
    if let Some(key) = replacement.keys().find(|key| key.starts_with('$')) {
        return Err(ParseError::new(
            format!(
                "replacement document must not contain update operators such as {}; use updateOne to apply \
                 operators",
                quote(key)
            ),
            offset,
        ));
    }
    Ok(replacement)
}

fn validate_collection_name(name: &str, offset: usize) -> Result<(), ParseError> {
    if name.is_empty() {
        return Err(ParseError::new("collection name must not be empty", offset));
    }
    if name.contains('\0') {
        return Err(ParseError::new(
            "collection name must not contain a NUL character",
            offset,
        ));
    }
    if name.contains('$') {
        return Err(ParseError::new(
            format!(
                "invalid collection name {}: MongoDB does not allow `$` in collection names",
                quote(name)
            ),
            offset,
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Structured form
// ---------------------------------------------------------------------------------------------------------------

/// Returns the fields that a structured operation accepts besides `collection` and `operation`, or `None` for an
/// unknown operation.
fn structured_fields(operation: &str) -> Option<&'static [&'static str]> {
    let fields: &'static [&'static str] = match operation {
        "find" => &["filter", "projection", "sort", "skip", "limit"],
        "findOne" => &["filter", "projection", "sort", "skip"],
        "aggregate" => &["pipeline", "options"],
        "countDocuments" => &["filter", "skip", "limit"],
        "estimatedDocumentCount" | "listCollections" => &[],
        "distinct" => &["field", "filter"],
        "insertOne" => &["document"],
        "insertMany" => &["documents"],
        "updateOne" | "updateMany" => &["filter", "update", "upsert"],
        "replaceOne" => &["filter", "replacement", "upsert"],
        "deleteOne" | "deleteMany" => &["filter"],
        _ => return None,
    };
    Some(fields)
}

/// Checks the nesting depth of a JSON value and rejects integers beyond the range of a 64-bit signed integer,
/// which the Extended JSON converter would turn into lossy doubles. `depth` counts the enclosing arrays and
/// objects. The outer object of the structured form adds one level to [`MAX_NESTING_DEPTH`].
fn check_json_value(value: &serde_json::Value, depth: usize) -> Result<(), ParseError> {
    let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
        serde_json::Value::Array(items) => Box::new(items.iter()),
        serde_json::Value::Object(members) => Box::new(members.values()),
        serde_json::Value::Number(number) => {
            if number.is_u64() && !number.is_i64() {
                return Err(ParseError::new(
                    format!(
                        "integer {number} is out of range for a 64-bit integer; write it as \
                         {{\"$numberDecimal\": \"{number}\"}}"
                    ),
                    0,
                ));
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    if depth > MAX_NESTING_DEPTH {
        return Err(ParseError::new(
            format!("values nested more than {MAX_NESTING_DEPTH} levels deep are not supported"),
            0,
        ));
    }
    for child in children {
        check_json_value(child, depth + 1)?;
    }
    Ok(())
}

/// Fields of a structured query whose operation name is known and whose keys were checked.
struct StructuredFields<'a> {
    object: &'a serde_json::Map<String, serde_json::Value>,
    operation: &'a str,
}

impl StructuredFields<'_> {
    fn collection(&self) -> Result<String, ParseError> {
        let name = match self.object.get("collection") {
            Some(serde_json::Value::String(name)) => name.clone(),
            Some(_) => return Err(ParseError::new("field `collection` must be a string", 0)),
            None => {
                return Err(ParseError::new(
                    format!("missing field `collection` for operation `{}`", self.operation),
                    0,
                ));
            }
        };
        validate_collection_name(&name, 0)?;
        Ok(name)
    }

    /// Converts a field from Extended JSON. A missing field and null both give `None`.
    fn optional(&self, name: &str) -> Result<Option<Argument>, ParseError> {
        let Some(json) = self.object.get(name).filter(|json| !json.is_null()) else {
            return Ok(None);
        };
        let value = Bson::try_from(json.clone())
            .map_err(|error| ParseError::new(format!("invalid Extended JSON in field {}: {error}", quote(name)), 0))?;
        Ok(Some(Argument { value, offset: 0 }))
    }

    fn required(&self, name: &str) -> Result<Option<Argument>, ParseError> {
        match self.optional(name)? {
            Some(argument) => Ok(Some(argument)),
            None => Err(ParseError::new(
                format!("missing field `{name}` for operation `{}`", self.operation),
                0,
            )),
        }
    }

    fn upsert(&self) -> Result<bool, ParseError> {
        match self.object.get("upsert") {
            None | Some(serde_json::Value::Null) => Ok(false),
            Some(serde_json::Value::Bool(flag)) => Ok(*flag),
            Some(_) => Err(ParseError::new("field `upsert` must be true or false", 0)),
        }
    }

    fn build_operation(&self) -> Result<MongoOperation, ParseError> {
        let filter = || -> Result<Document, ParseError> {
            Ok(optional_document(self.optional("filter")?, "filter")?.unwrap_or_default())
        };
        let required_filter = || required_document(self.required("filter")?, "filter", 0);
        let skip = || {
            self.optional("skip")?
                .map(|argument| skip_value(Some(argument), 0))
                .transpose()
        };

        let operation = match self.operation {
            "find" => MongoOperation::Find {
                filter: filter()?,
                projection: optional_document(self.optional("projection")?, "projection")?,
                sort: optional_document(self.optional("sort")?, "sort")?,
                skip: skip()?,
                limit: self
                    .optional("limit")?
                    .map(|argument| limit_value(Some(argument), 0))
                    .transpose()?,
            },
            "findOne" => MongoOperation::FindOne {
                filter: filter()?,
                projection: optional_document(self.optional("projection")?, "projection")?,
                sort: optional_document(self.optional("sort")?, "sort")?,
                skip: skip()?,
            },
            "aggregate" => MongoOperation::Aggregate {
                pipeline: document_list(self.required("pipeline")?, "pipeline", true, 0)?,
                options: optional_document(self.optional("options")?, "options")?,
            },
            "countDocuments" => MongoOperation::CountDocuments {
                filter: filter()?,
                skip: skip()?,
                limit: self.optional("limit")?.map(count_limit_value).transpose()?,
            },
            "estimatedDocumentCount" => MongoOperation::EstimatedDocumentCount,
            "distinct" => MongoOperation::Distinct {
                field: required_string(self.required("field")?, "field", 0)?,
                filter: filter()?,
            },
            "insertOne" => MongoOperation::InsertOne {
                document: required_document(self.required("document")?, "document", 0)?,
            },
            "insertMany" => MongoOperation::InsertMany {
                documents: document_list(self.required("documents")?, "documents", false, 0)?,
            },
            "updateOne" => MongoOperation::UpdateOne {
                filter: required_filter()?,
                update: update_spec(self.required("update")?, 0)?,
                upsert: self.upsert()?,
            },
            "updateMany" => MongoOperation::UpdateMany {
                filter: required_filter()?,
                update: update_spec(self.required("update")?, 0)?,
                upsert: self.upsert()?,
            },
            "replaceOne" => MongoOperation::ReplaceOne {
                filter: required_filter()?,
                replacement: replacement_document(self.required("replacement")?, 0)?,
                upsert: self.upsert()?,
            },
            "deleteOne" => MongoOperation::DeleteOne {
                filter: required_filter()?,
            },
            "deleteMany" => MongoOperation::DeleteMany {
                filter: required_filter()?,
            },
            "listCollections" => MongoOperation::ListCollections,
            other => return Err(ParseError::new(format!("unsupported operation {}", quote(other)), 0)),
        };
        Ok(operation)
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;
    use serde_json::json;

    use super::*;

    fn bound(pairs: &[(&str, Bson)]) -> BTreeMap<String, Bson> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    #[test]
    fn placeholders_take_typed_values_where_values_go() {
        let params = bound(&[
            ("min", Bson::Int64(5)),
            ("tags", Bson::Array(vec![Bson::String("a".into())])),
        ]);
        let command =
            parse_with_params("db.c.find({qty: {$gte: {{ min }}}, tag: {$in: {{tags}}}})", &params).expect("parses");
        let MongoOperation::Find { filter, .. } = command.operation else {
            panic!("expected find");
        };
        assert_eq!(filter, doc! { "qty": { "$gte": 5_i64 }, "tag": { "$in": ["a"] } });
    }

    #[test]
    fn placeholders_in_strings_stay_text() {
        let params = bound(&[("name", Bson::String("x\"}); db.dropDatabase(); ({".into()))]);
        let command = parse_with_params("db.c.find({name: {{name}}, note: '{{name}}'})", &params).expect("parses");
        let MongoOperation::Find { filter, .. } = command.operation else {
            panic!("expected find");
        };
        assert_eq!(filter.get_str("name").ok(), Some("x\"}); db.dropDatabase(); ({"));
        assert_eq!(filter.get_str("note").ok(), Some("{{name}}"));
    }

    #[test]
    fn missing_and_unused_parameters_are_named() {
        let missing = parse_with_params("db.c.find({a: {{a}}})", &BTreeMap::new()).expect_err("no value");
        assert!(missing.message.contains("{{a}}"), "{}", missing.message);
        let unused = parse_with_params("db.c.find({})", &bound(&[("b", Bson::Null)])).expect_err("unused");
        assert!(unused.message.contains("`b`"), "{}", unused.message);
        let unterminated = parse_with_params("db.c.find({a: {{a})", &BTreeMap::new()).expect_err("unterminated");
        assert!(unterminated.message.contains("}}"), "{}", unterminated.message);
    }

    fn shell(text: &str) -> MongoCommand {
        parse_shell(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn operation(text: &str) -> MongoOperation {
        shell(text).operation
    }

    fn shell_error(text: &str) -> ParseError {
        match parse_shell(text) {
            Ok(command) => panic!("{text} parsed as {command:?}"),
            Err(error) => error,
        }
    }

    /// Parses `value_text` as the value of field `v` and returns it.
    fn value(value_text: &str) -> Bson {
        let text = format!("db.c.insertOne({{v: {value_text}}})");
        match operation(&text) {
            MongoOperation::InsertOne { document } => document.get("v").cloned().expect("field v"),
            other => panic!("{text} parsed as {other:?}"),
        }
    }

    fn structured(json: serde_json::Value) -> MongoCommand {
        parse_structured(&json).unwrap_or_else(|error| panic!("{json}: {error}"))
    }

    fn structured_error(json: serde_json::Value) -> ParseError {
        match parse_structured(&json) {
            Ok(command) => panic!("{json} parsed as {command:?}"),
            Err(error) => error,
        }
    }

    fn find(filter: Document) -> MongoOperation {
        MongoOperation::Find {
            filter,
            projection: None,
            sort: None,
            skip: None,
            limit: None,
        }
    }

    // Receivers and statements

    #[test]
    fn receiver_forms() {
        let cases = [
            "db.orders.find()",
            "db['orders'].find()",
            "db[\"orders\"].find()",
            "db.getCollection('orders').find()",
            "db.getCollection(\"orders\").find()",
            "  db . orders . find ( ) ; ",
            "// comment\ndb.orders/* inline */.find()",
        ];
        for text in cases {
            let command = shell(text);
            assert_eq!(command.collection.as_deref(), Some("orders"), "{text}");
            assert_eq!(command.operation, find(Document::new()), "{text}");
        }
    }

    #[test]
    fn receiver_dotted_collection_names() {
        let cases = [
            ("db.a.b.find()", "a.b"),
            ("db.system.users.find()", "system.users"),
            ("db.getCollection('a').b.find()", "a.b"),
            ("db['a'].b.find()", "a.b"),
            ("db.getCollection('my-orders').find()", "my-orders"),
            ("db['日本'].find()", "日本"),
        ];
        for (text, expected) in cases {
            assert_eq!(shell(text).collection.as_deref(), Some(expected), "{text}");
        }
    }

    #[test]
    fn list_collections_forms() {
        for text in [
            "db.getCollectionNames()",
            "show collections",
            "show tables;",
            "  show  collections  ",
        ] {
            let command = shell(text);
            assert_eq!(command.collection, None, "{text}");
            assert_eq!(command.operation, MongoOperation::ListCollections, "{text}");
        }
    }

    #[test]
    fn receiver_errors() {
        let cases = [
            (
                "db.find",
                7,
                "expected a method call such as `.find()` after collection `find`",
            ),
            ("db.orders", 9, "expected a method call"),
            ("db", 2, "expected `.` after `db`"),
            ("db[orders].find()", 3, "expected a quoted collection name"),
            ("db[''].find()", 3, "must not be empty"),
            ("db['a$b'].find()", 3, "`$`"),
            ("db.getCollection(1).find()", 17, "must be a string"),
            ("show dbs", 5, "only `show collections`"),
            ("use test", 0, "unsupported statement starting with `use`"),
            ("", 0, "found end of input"),
        ];
        for (text, offset, message) in cases {
            let error = shell_error(text);
            assert_eq!(error.offset, offset, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    // Collection methods

    #[test]
    fn find_arguments() {
        assert_eq!(operation("db.c.find()"), find(Document::new()));
        assert_eq!(operation("db.c.find({a: 1})"), find(doc! {"a": 1}));
        assert_eq!(operation("db.c.find(null)"), find(Document::new()));
        assert_eq!(
            operation("db.c.find({a: 1}, {_id: 0, a: 1})"),
            MongoOperation::Find {
                filter: doc! {"a": 1},
                projection: Some(doc! {"_id": 0, "a": 1}),
                sort: None,
                skip: None,
                limit: None,
            }
        );
    }

    #[test]
    fn find_cursor_methods() {
        assert_eq!(
            operation("db.c.find({a: 1}).sort({_id: -1}).skip(5).limit(10).projection({a: 1}).pretty().toArray()"),
            MongoOperation::Find {
                filter: doc! {"a": 1},
                projection: Some(doc! {"a": 1}),
                sort: Some(doc! {"_id": -1}),
                skip: Some(5),
                limit: Some(10),
            }
        );
    }

    #[test]
    fn find_cursor_last_call_wins() {
        let MongoOperation::Find { limit, sort, .. } = operation("db.c.find().limit(1).sort({a: 1}).limit(2)") else {
            panic!("expected find");
        };
        assert_eq!(limit, Some(2));
        assert_eq!(sort, Some(doc! {"a": 1}));
    }

    #[test]
    fn find_limit_negative_and_double() {
        let MongoOperation::Find { limit, .. } = operation("db.c.find().limit(-3)") else {
            panic!("expected find");
        };
        assert_eq!(limit, Some(-3));
        let MongoOperation::Find { limit, .. } = operation("db.c.find().limit(4.0)") else {
            panic!("expected find");
        };
        assert_eq!(limit, Some(4));
    }

    #[test]
    fn find_count_rewrite() {
        let cases = [
            ("db.c.find({a: 1}).count()", None, None),
            ("db.c.find({a: 1}).skip(5).limit(10).count()", Some(5), Some(10)),
            ("db.c.find({a: 1}).limit(-10).count()", None, Some(10)),
            ("db.c.find({a: 1}).limit(0).count()", None, None),
            ("db.c.find({a: 1}).sort({b: 1}).count();", None, None),
        ];
        for (text, skip, limit) in cases {
            assert_eq!(
                operation(text),
                MongoOperation::CountDocuments {
                    filter: doc! {"a": 1},
                    skip,
                    limit,
                },
                "{text}"
            );
        }
    }

    #[test]
    fn find_one_arguments() {
        assert_eq!(
            operation("db.c.findOne()"),
            MongoOperation::FindOne {
                filter: Document::new(),
                projection: None,
                sort: None,
                skip: None,
            }
        );
        assert_eq!(
            operation("db.c.findOne({a: 1}, {b: 1})"),
            MongoOperation::FindOne {
                filter: doc! {"a": 1},
                projection: Some(doc! {"b": 1}),
                sort: None,
                skip: None,
            }
        );
    }

    #[test]
    fn aggregate_arguments() {
        assert_eq!(
            operation("db.c.aggregate([{$match: {a: 1}}, {$limit: 5}])"),
            MongoOperation::Aggregate {
                pipeline: vec![doc! {"$match": {"a": 1}}, doc! {"$limit": 5}],
                options: None,
            }
        );
        assert_eq!(
            operation("db.c.aggregate([], {allowDiskUse: true}).toArray()"),
            MongoOperation::Aggregate {
                pipeline: Vec::new(),
                options: Some(doc! {"allowDiskUse": true}),
            }
        );
        assert_eq!(
            operation("db.c.aggregate({$match: {a: 1}}, {$count: 'n'})"),
            MongoOperation::Aggregate {
                pipeline: vec![doc! {"$match": {"a": 1}}, doc! {"$count": "n"}],
                options: None,
            }
        );
    }

    #[test]
    fn count_documents_arguments() {
        let cases = [
            ("db.c.countDocuments()", Document::new(), None, None),
            ("db.c.countDocuments({a: 1})", doc! {"a": 1}, None, None),
            (
                "db.c.countDocuments({a: 1}, {skip: 2, limit: 3})",
                doc! {"a": 1},
                Some(2),
                Some(3),
            ),
            ("db.c.count()", Document::new(), None, None),
            ("db.c.count({a: 1})", doc! {"a": 1}, None, None),
            ("db.c.count({a: 1}, {limit: 3})", doc! {"a": 1}, None, Some(3)),
        ];
        for (text, filter, skip, limit) in cases {
            assert_eq!(
                operation(text),
                MongoOperation::CountDocuments { filter, skip, limit },
                "{text}"
            );
        }
    }

    #[test]
    fn estimated_document_count() {
        assert_eq!(
            operation("db.c.estimatedDocumentCount()"),
            MongoOperation::EstimatedDocumentCount
        );
    }

    #[test]
    fn distinct_arguments() {
        assert_eq!(
            operation("db.c.distinct('status')"),
            MongoOperation::Distinct {
                field: "status".to_owned(),
                filter: Document::new(),
            }
        );
        assert_eq!(
            operation("db.c.distinct('status', {region: 'eu'})"),
            MongoOperation::Distinct {
                field: "status".to_owned(),
                filter: doc! {"region": "eu"},
            }
        );
    }

    #[test]
    fn insert_arguments() {
        assert_eq!(
            operation("db.c.insertOne({a: 1})"),
            MongoOperation::InsertOne {
                document: doc! {"a": 1}
            }
        );
        assert_eq!(
            operation("db.c.insertMany([{a: 1}, {a: 2},])"),
            MongoOperation::InsertMany {
                documents: vec![doc! {"a": 1}, doc! {"a": 2}],
            }
        );
    }

    #[test]
    fn update_arguments() {
        assert_eq!(
            operation("db.c.updateOne({a: 1}, {$set: {b: 2}})"),
            MongoOperation::UpdateOne {
                filter: doc! {"a": 1},
                update: UpdateSpec::Document(doc! {"$set": {"b": 2}}),
                upsert: false,
            }
        );
        assert_eq!(
            operation("db.c.updateOne({a: 1}, {$set: {b: 2}}, {upsert: true})"),
            MongoOperation::UpdateOne {
                filter: doc! {"a": 1},
                update: UpdateSpec::Document(doc! {"$set": {"b": 2}}),
                upsert: true,
            }
        );
        assert_eq!(
            operation("db.c.updateMany({}, [{$set: {b: '$a'}}])"),
            MongoOperation::UpdateMany {
                filter: Document::new(),
                update: UpdateSpec::Pipeline(vec![doc! {"$set": {"b": "$a"}}]),
                upsert: false,
            }
        );
        assert_eq!(
            operation("db.c.updateMany({}, {$inc: {n: 1}}, {upsert: false})"),
            MongoOperation::UpdateMany {
                filter: Document::new(),
                update: UpdateSpec::Document(doc! {"$inc": {"n": 1}}),
                upsert: false,
            }
        );
    }

    #[test]
    fn replace_arguments() {
        assert_eq!(
            operation("db.c.replaceOne({a: 1}, {a: 1, b: 2})"),
            MongoOperation::ReplaceOne {
                filter: doc! {"a": 1},
                replacement: doc! {"a": 1, "b": 2},
                upsert: false,
            }
        );
        assert_eq!(
            operation("db.c.replaceOne({a: 1}, {a: 1}, {upsert: true})"),
            MongoOperation::ReplaceOne {
                filter: doc! {"a": 1},
                replacement: doc! {"a": 1},
                upsert: true,
            }
        );
    }

    #[test]
    fn delete_arguments() {
        assert_eq!(
            operation("db.c.deleteOne({a: 1})"),
            MongoOperation::DeleteOne { filter: doc! {"a": 1} }
        );
        assert_eq!(
            operation("db.c.deleteMany({})"),
            MongoOperation::DeleteMany {
                filter: Document::new()
            }
        );
    }

    #[test]
    fn method_argument_errors() {
        let cases = [
            (
                "db.c.find({}, {}, {})",
                18,
                "too many arguments for find(filter?, projection?)",
            ),
            ("db.c.find(1)", 10, "filter must be a document"),
            ("db.c.find().sort()", 17, "missing argument for sort(value)"),
            ("db.c.find().skip(-1)", 17, "non-negative integer"),
            ("db.c.find().limit('x')", 18, "limit must be an integer"),
            ("db.c.aggregate()", 15, "missing argument for aggregate"),
            ("db.c.aggregate([1])", 15, "pipeline[0] must be a document"),
            (
                "db.c.aggregate({$match: {}}, 1)",
                29,
                "must be a pipeline stage document",
            ),
            (
                "db.c.countDocuments({}, {hint: 'a_1'})",
                24,
                "unsupported option `hint`",
            ),
            ("db.c.countDocuments({}, {limit: 0})", 24, "positive integer"),
            ("db.c.estimatedDocumentCount({})", 28, "too many arguments"),
            ("db.c.distinct(1)", 14, "field must be a string"),
            ("db.c.insertOne()", 15, "missing argument for insertOne(document)"),
            ("db.c.insertMany([])", 16, "at least one document"),
            ("db.c.insertMany([{}, 2])", 16, "documents[1] must be a document"),
            ("db.c.updateOne({a: 1})", 21, "missing argument for updateOne"),
            ("db.c.updateOne({}, {b: 2})", 19, "not an update operator"),
            ("db.c.updateOne({}, {})", 19, "must not be empty"),
            ("db.c.updateOne({}, 'x')", 19, "pipeline array"),
            (
                "db.c.updateOne({}, {$set: {}}, {multi: true})",
                31,
                "unsupported option `multi`",
            ),
            (
                "db.c.updateOne({}, {$set: {}}, {upsert: 1})",
                31,
                "upsert must be true or false",
            ),
            (
                "db.c.replaceOne({}, {$set: {a: 1}})",
                20,
                "must not contain update operators",
            ),
            ("db.c.deleteOne()", 15, "missing argument for deleteOne(filter)"),
            ("db.c.deleteMany(null)", 16, "filter must be a document"),
        ];
        for (text, offset, message) in cases {
            let error = shell_error(text);
            assert_eq!(error.offset, offset, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn cursor_method_errors() {
        let cases = [
            (
                "db.c.find().hint({a: 1})",
                12,
                "unsupported cursor method `hint` after find()",
            ),
            ("db.c.findOne().sort({a: 1})", 15, "cannot follow findOne()"),
            ("db.c.find().count().limit(1)", 20, "cannot follow `.count()`"),
            ("db.c.find().toArray().pretty()", 22, "cannot follow `.toArray()`"),
            ("db.c.aggregate([]).sort({a: 1})", 19, "supported are toArray, pretty"),
            ("db.c.insertOne({}).toArray()", 19, "cannot follow insertOne()"),
            ("db.c.find().count(true)", 18, "too many arguments for count()"),
        ];
        for (text, offset, message) in cases {
            let error = shell_error(text);
            assert_eq!(error.offset, offset, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    // Values

    #[test]
    fn number_types() {
        let cases = [
            ("1", Bson::Int32(1)),
            ("-1", Bson::Int32(-1)),
            ("2147483647", Bson::Int32(i32::MAX)),
            ("-2147483648", Bson::Int32(i32::MIN)),
            ("2147483648", Bson::Int64(2_147_483_648)),
            ("-2147483649", Bson::Int64(-2_147_483_649)),
            ("9223372036854775807", Bson::Int64(i64::MAX)),
            ("-9223372036854775808", Bson::Int64(i64::MIN)),
            ("1.5", Bson::Double(1.5)),
            ("-0.25", Bson::Double(-0.25)),
            ("1e3", Bson::Double(1000.0)),
            ("2.5E-1", Bson::Double(0.25)),
            ("1.0", Bson::Double(1.0)),
            ("Infinity", Bson::Double(f64::INFINITY)),
            ("-Infinity", Bson::Double(f64::NEG_INFINITY)),
        ];
        for (text, expected) in cases {
            assert_eq!(value(text), expected, "{text}");
        }
    }

    #[test]
    fn number_nan() {
        let Bson::Double(number) = value("NaN") else {
            panic!("expected a double");
        };
        assert!(number.is_nan());
    }

    #[test]
    fn keyword_values() {
        assert_eq!(value("true"), Bson::Boolean(true));
        assert_eq!(value("false"), Bson::Boolean(false));
        assert_eq!(value("null"), Bson::Null);
        assert_eq!(value("undefined"), Bson::Null);
    }

    #[test]
    fn relaxed_syntax() {
        let text = r#"db.c.find({
            // line comment
            plain: 1, $or: [{'single': 'quoted'}, {"double": "quoted"},],
            'a.b': 2, c.d: 3, /* block
            comment */ nested: {x: [1, 2, 3,],},
            0: 'numeric key',
        },)"#;
        assert_eq!(
            operation(text),
            find(doc! {
                "plain": 1,
                "$or": [{"single": "quoted"}, {"double": "quoted"}],
                "a.b": 2,
                "c.d": 3,
                "nested": {"x": [1, 2, 3]},
                "0": "numeric key",
            })
        );
    }

    #[test]
    fn string_escapes() {
        let cases = [
            (r#""a\"b""#, "a\"b"),
            (r#"'it\'s'"#, "it's"),
            (r#""tab\tnew\nline""#, "tab\tnew\nline"),
            (r#""back\\slash""#, "back\\slash"),
            (r#""\u00e9\x41""#, "éA"),
            (r#""\u{1F600}""#, "😀"),
            (r#""\uD83D\uDE00""#, "😀"),
            ("'double \" inside'", "double \" inside"),
            ("\"line \\\ncontinued\"", "line continued"),
            ("'ünïcödé'", "ünïcödé"),
        ];
        for (text, expected) in cases {
            assert_eq!(value(text), Bson::String(expected.to_owned()), "{text}");
        }
    }

    #[test]
    fn regex_literals() {
        let cases = [
            ("/^abc/", "^abc", ""),
            ("/a.c/i", "a.c", "i"),
            ("/x/xsmiu", "x", "imsux"),
            (r"/a\/b/", r"a\/b", ""),
            (r"/[/]x/m", "[/]x", "m"),
            (r"/\d+\.\d*/", r"\d+\.\d*", ""),
        ];
        for (text, pattern, options) in cases {
            assert_eq!(
                value(text),
                Bson::RegularExpression(Regex {
                    pattern: pattern.to_owned(),
                    options: options.to_owned(),
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn regex_errors() {
        let cases = [
            ("db.c.find({a: /x/g})", 17, "unsupported regex flag `g`"),
            ("db.c.find({a: /x/ii})", 18, "duplicate regex flag `i`"),
            ("db.c.find({a: /x})", 14, "unterminated regex"),
        ];
        for (text, offset, message) in cases {
            let error = shell_error(text);
            assert_eq!(error.offset, offset, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    // Constructors

    #[test]
    fn object_id_bytes() {
        let expected = Bson::ObjectId(ObjectId::from_bytes([
            0x50, 0x7f, 0x1f, 0x77, 0xbc, 0xf8, 0x6c, 0xd7, 0x99, 0x43, 0x90, 0x11,
        ]));
        assert_eq!(value("ObjectId('507f1f77bcf86cd799439011')"), expected);
        assert_eq!(value("new ObjectId(\"507F1F77BCF86CD799439011\")"), expected);
    }

    #[test]
    fn date_constructors() {
        let cases = [
            ("ISODate('2024-01-31T12:34:56.789Z')", 1_706_704_496_789),
            ("new Date('2024-01-31T12:34:56.789Z')", 1_706_704_496_789),
            ("Date('2024-01-31T12:34:56.789Z')", 1_706_704_496_789),
            ("new ISODate('2024-01-31T14:34:56.789+02:00')", 1_706_704_496_789),
            ("ISODate('2024-01-31T12:34:56.789999Z')", 1_706_704_496_789),
            ("ISODate('2024-01-31')", 1_706_659_200_000),
            ("new Date('2024-01-31')", 1_706_659_200_000),
            ("new Date(0)", 0),
            ("new Date(1706704496789)", 1_706_704_496_789),
        ];
        for (text, millis) in cases {
            assert_eq!(value(text), Bson::DateTime(DateTime::from_millis(millis)), "{text}");
        }
    }

    #[test]
    fn integer_constructors() {
        let cases = [
            ("NumberLong(123)", Bson::Int64(123)),
            ("NumberLong('123')", Bson::Int64(123)),
            ("new NumberLong('-9223372036854775808')", Bson::Int64(i64::MIN)),
            ("NumberLong(9223372036854775807)", Bson::Int64(i64::MAX)),
            ("NumberInt(5)", Bson::Int32(5)),
            ("NumberInt('-7')", Bson::Int32(-7)),
            ("new NumberInt(2147483647)", Bson::Int32(i32::MAX)),
        ];
        for (text, expected) in cases {
            assert_eq!(value(text), expected, "{text}");
        }
    }

    #[test]
    fn decimal_constructors_keep_digits() {
        let cases = [
            (
                "NumberDecimal('1234567890.123456789012345678901234')",
                "1234567890.123456789012345678901234",
            ),
            ("Decimal128('0.1')", "0.1"),
            ("new NumberDecimal('-0.00')", "-0.00"),
            ("NumberDecimal(42)", "42"),
            ("new Decimal128('1E+3')", "1E+3"),
        ];
        for (text, digits) in cases {
            let Bson::Decimal128(decimal) = value(text) else {
                panic!("{text}: expected a decimal");
            };
            assert_eq!(decimal.to_string(), digits, "{text}");
        }
    }

    #[test]
    fn timestamp_constructor() {
        let expected = Bson::Timestamp(Timestamp {
            time: 1_700_000_000,
            increment: 7,
        });
        assert_eq!(value("Timestamp(1700000000, 7)"), expected);
        assert_eq!(value("new Timestamp({t: 1700000000, i: 7})"), expected);
        assert_eq!(
            value("Timestamp(4294967295, 0)"),
            Bson::Timestamp(Timestamp {
                time: u32::MAX,
                increment: 0,
            })
        );
    }

    #[test]
    fn binary_constructors() {
        assert_eq!(
            value("BinData(0, 'aGVsbG8=')"),
            Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: b"hello".to_vec(),
            })
        );
        assert_eq!(
            value("new BinData(128, '')"),
            Bson::Binary(Binary {
                subtype: BinarySubtype::UserDefined(128),
                bytes: Vec::new(),
            })
        );
        let uuid_bytes = vec![
            0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00,
        ];
        let expected = Bson::Binary(Binary {
            subtype: BinarySubtype::Uuid,
            bytes: uuid_bytes,
        });
        assert_eq!(value("UUID('123e4567-e89b-12d3-a456-426614174000')"), expected);
        assert_eq!(value("new UUID('123e4567e89b12d3a456426614174000')"), expected);
    }

    #[test]
    fn key_constructors() {
        assert_eq!(value("MinKey()"), Bson::MinKey);
        assert_eq!(value("new MaxKey()"), Bson::MaxKey);
    }

    #[test]
    fn constructor_errors() {
        let cases = [
            ("ObjectId('123')", 9, "invalid ObjectId argument `123`"),
            ("ObjectId('zz7f1f77bcf86cd799439011')", 9, "invalid ObjectId"),
            ("ObjectId()", 0, "generates a new id"),
            ("ObjectId(1)", 9, "invalid ObjectId argument 1"),
            ("ObjectId(true)", 9, "invalid ObjectId argument of type bool"),
            ("new Date()", 0, "new Date() without an argument"),
            ("Date()", 0, "depends on the clock"),
            ("ISODate()", 0, "depends on the clock"),
            ("new Date(2024, 0, 31)", 15, "too many arguments"),
            ("ISODate('2024-01-31T12:00:00')", 8, "invalid date"),
            ("ISODate('2024-1-31')", 8, "invalid date"),
            ("ISODate('2024-02-30')", 8, "invalid date"),
            ("NumberLong('9223372036854775808')", 11, "invalid NumberLong"),
            ("NumberLong(1.5)", 11, "invalid NumberLong"),
            ("NumberInt(2147483648)", 10, "invalid NumberInt"),
            ("NumberDecimal(0.1)", 14, "as a string"),
            ("NumberDecimal('abc')", 14, "invalid decimal"),
            ("NumberDecimal('')", 14, "invalid decimal"),
            ("NumberDecimal('-')", 14, "invalid decimal"),
            ("NumberDecimal('1E+99999')", 14, "invalid decimal"),
            ("Timestamp(-1, 0)", 10, "invalid Timestamp seconds"),
            ("Timestamp(1)", 11, "missing argument"),
            ("BinData(256, '')", 8, "invalid BinData subtype"),
            ("BinData(0, '***')", 11, "invalid base64"),
            ("UUID('123')", 5, "invalid UUID argument `123`"),
            ("UUID('123e4567-e89b-12d3-a456-42661417400g')", 5, "invalid UUID"),
            ("UUID('123e4567e-89b-12d3-a456-426614174000')", 5, "invalid UUID"),
            ("UUID()", 5, "missing argument"),
            ("MinKey(1)", 7, "too many arguments"),
            ("new Foo()", 4, "unsupported constructor `Foo`"),
        ];
        for (value_text, offset, message) in cases {
            let text = format!("db.c.find({value_text})");
            let error = shell_error(&text);
            assert_eq!(error.offset, offset + 10, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn extended_json_in_shell() {
        let cases = [
            (
                r#"{"$oid": "507f1f77bcf86cd799439011"}"#,
                Bson::ObjectId(ObjectId::from_bytes([
                    0x50, 0x7f, 0x1f, 0x77, 0xbc, 0xf8, 0x6c, 0xd7, 0x99, 0x43, 0x90, 0x11,
                ])),
            ),
            (
                r#"{$date: "2024-01-31T12:34:56.789Z"}"#,
                Bson::DateTime(DateTime::from_millis(1_706_704_496_789)),
            ),
            (
                r#"{"$date": {"$numberLong": "1706704496789"}}"#,
                Bson::DateTime(DateTime::from_millis(1_706_704_496_789)),
            ),
            (r#"{"$numberLong": "5"}"#, Bson::Int64(5)),
            (r#"{"$numberInt": "5"}"#, Bson::Int32(5)),
            (r#"{"$numberDouble": "5"}"#, Bson::Double(5.0)),
            (
                r#"{$timestamp: {t: 1, i: 2}}"#,
                Bson::Timestamp(Timestamp { time: 1, increment: 2 }),
            ),
            (r#"{$minKey: 1}"#, Bson::MinKey),
        ];
        for (text, expected) in cases {
            assert_eq!(value(text), expected, "{text}");
        }
        let Bson::Decimal128(decimal) = value(r#"{"$numberDecimal": "12.3400"}"#) else {
            panic!("expected a decimal");
        };
        assert_eq!(decimal.to_string(), "12.3400");
    }

    #[test]
    fn extended_json_in_shell_errors() {
        let cases = [
            (r#"db.c.find({_id: {"$oid": "xyz"}})"#, 16),
            (r#"db.c.find({n: {"$numberLong": 5}})"#, 14),
            (r#"db.c.find({n: {"$numberLong": "5", extra: 1}})"#, 14),
        ];
        for (text, offset) in cases {
            let error = shell_error(text);
            assert_eq!(error.offset, offset, "{text}: {error}");
            assert!(error.message.contains("invalid Extended JSON"), "{text}: {error}");
        }
    }

    // Errors with offsets

    #[test]
    fn error_offsets() {
        let cases = [
            ("db.orders.drop()", 10, "unsupported method `drop`"),
            ("db.dropDatabase()", 3, "unsupported database method `dropDatabase`"),
            (
                "db.orders.find({a: Math.random()})",
                19,
                "unsupported expression `Math.random`",
            ),
            ("db.orders.find(function() { return true })", 15, "JavaScript functions"),
            (
                "db.orders.find({$where: this.a > 1})",
                24,
                "unsupported expression `this.a`",
            ),
            ("db.orders.find(x => x.a > 1)", 15, "unsupported expression `x`"),
            ("db.orders.find(() => true)", 15, "expected a value but found `(`"),
            (
                "db.orders.find({a: 1 + 2})",
                21,
                "expected `,` or `}` in the object but found `+`",
            ),
            ("db.orders.find({a: `x`})", 19, "template literals"),
            ("db.orders.find({a: \"abc})", 19, "unterminated string"),
            ("db.orders.find({a: 'abc\n'})", 19, "unterminated string"),
            ("db.orders.find({a: '\\d'})", 20, "invalid escape sequence `\\d`"),
            ("db.orders.find({_id: ObjectId(\"123\")})", 30, "invalid ObjectId"),
            (
                "db.orders.find({a: 9223372036854775808})",
                19,
                "out of range for a 64-bit integer",
            ),
            (
                "db.orders.find({a: -9223372036854775809})",
                19,
                "out of range for a 64-bit integer",
            ),
            ("db.orders.find({a: 1e999})", 19, "out of range for a double"),
            ("db.orders.find({a: 007})", 19, "leading zeros"),
            ("db.orders.find({a: 0x1F})", 19, "invalid number `0x1F`"),
            ("db.orders.find({a: 1.})", 19, "invalid number `1.`"),
            ("db.orders.find() x", 17, "unexpected `x` after the end of the query"),
            ("db.orders.find(); db.orders.find()", 18, "only one query"),
            ("db.orders.find()) ", 16, "unexpected `)`"),
            ("db.orders.find({a: new Date()})", 19, "new Date() without an argument"),
            ("db.orders.find({a: 1, a: 2})", 22, "duplicate key `a`"),
            ("db.orders.find({a 1})", 18, "expected `:` after key `a`"),
            ("db.orders.find({a: [1,,2]})", 22, "expected a value but found `,`"),
            ("db.orders.find({,})", 16, "expected a key but found `,`"),
            ("db.orders.find({a: 1}", 21, "expected `,` or `)`"),
            ("db.orders.find({a: 1} /* open", 22, "unterminated comment"),
            ("db.orders.find({a: -})", 20, "expected a number after `-`"),
        ];
        for (text, offset, message) in cases {
            let error = shell_error(text);
            assert_eq!(error.offset, offset, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn every_prefix_fails_cleanly() {
        let text = "db['orders'].find({a: /x\\/[/]/i, b: 'é\\u00e9', c: [1, -2.5e3, NumberLong('7')], \
                    d: {$oid: '507f1f77bcf86cd799439011'}, e: ISODate('2024-01-31'), f: UUID('123e4567e89b12d3a456426614174000')}, \
                    /* c */ {a: 1}).sort({_id: -1}).limit(10); // end";
        assert!(parse_shell(text).is_ok());
        for (end, _) in text.char_indices() {
            let prefix = &text[..end];
            if let Err(error) = parse_shell(prefix) {
                assert!(error.offset <= prefix.len(), "{prefix}: {error}");
            }
        }
    }

    #[test]
    fn error_display_has_offset() {
        let error = shell_error("db.orders.drop()");
        assert!(error.to_string().ends_with("(at byte 10)"), "{error}");
    }

    #[test]
    fn nesting_depth_limit() {
        let nested = |levels: usize| {
            format!(
                "db.c.find({{a: {}1{}}})",
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        assert!(parse_shell(&nested(MAX_NESTING_DEPTH)).is_ok());

        let error = shell_error(&nested(MAX_NESTING_DEPTH + 1));
        assert_eq!(error.offset, 14 + MAX_NESTING_DEPTH - 1);
        assert!(error.message.contains("nested more than 99 levels"), "{error}");

        let error = shell_error(&nested(100_000));
        assert!(error.message.contains("nested more than 99 levels"), "{error}");
    }

    #[test]
    fn input_length_limit() {
        let padding = " ".repeat(MAX_INPUT_BYTES);
        let error = shell_error(&format!("db.c.find(){padding}"));
        assert_eq!(error.offset, MAX_INPUT_BYTES);
        assert!(error.message.contains("exceeds the maximum"), "{error}");
        assert!(parse(&format!("{{}}{padding}")).is_err());
        assert!(parse_shell(&format!("db.c.find(){}", " ".repeat(MAX_INPUT_BYTES - 11))).is_ok());
    }

    // Structured form

    #[test]
    fn structured_each_operation() {
        let cases = [
            (
                json!({"collection": "c", "operation": "find", "filter": {"a": 1}, "projection": {"a": 1},
                       "sort": {"_id": -1}, "skip": 5, "limit": 10}),
                MongoOperation::Find {
                    filter: doc! {"a": 1},
                    projection: Some(doc! {"a": 1}),
                    sort: Some(doc! {"_id": -1}),
                    skip: Some(5),
                    limit: Some(10),
                },
            ),
            (json!({"collection": "c", "operation": "find"}), find(Document::new())),
            (
                json!({"collection": "c", "operation": "findOne", "filter": {"a": 1}, "sort": {"b": 1}, "skip": 2}),
                MongoOperation::FindOne {
                    filter: doc! {"a": 1},
                    projection: None,
                    sort: Some(doc! {"b": 1}),
                    skip: Some(2),
                },
            ),
            (
                json!({"collection": "c", "operation": "aggregate", "pipeline": [{"$match": {"a": 1}}],
                       "options": {"allowDiskUse": true}}),
                MongoOperation::Aggregate {
                    pipeline: vec![doc! {"$match": {"a": 1}}],
                    options: Some(doc! {"allowDiskUse": true}),
                },
            ),
            (
                json!({"collection": "c", "operation": "countDocuments", "filter": {"a": 1}, "skip": 1, "limit": 2}),
                MongoOperation::CountDocuments {
                    filter: doc! {"a": 1},
                    skip: Some(1),
                    limit: Some(2),
                },
            ),
            (
                json!({"collection": "c", "operation": "estimatedDocumentCount"}),
                MongoOperation::EstimatedDocumentCount,
            ),
            (
                json!({"collection": "c", "operation": "distinct", "field": "status", "filter": {"a": 1}}),
                MongoOperation::Distinct {
                    field: "status".to_owned(),
                    filter: doc! {"a": 1},
                },
            ),
            (
                json!({"collection": "c", "operation": "insertOne", "document": {"a": 1}}),
                MongoOperation::InsertOne {
                    document: doc! {"a": 1},
                },
            ),
            (
                json!({"collection": "c", "operation": "insertMany", "documents": [{"a": 1}, {"a": 2}]}),
                MongoOperation::InsertMany {
                    documents: vec![doc! {"a": 1}, doc! {"a": 2}],
                },
            ),
            (
                json!({"collection": "c", "operation": "updateOne", "filter": {"a": 1},
                       "update": {"$set": {"b": 2}}, "upsert": true}),
                MongoOperation::UpdateOne {
                    filter: doc! {"a": 1},
                    update: UpdateSpec::Document(doc! {"$set": {"b": 2}}),
                    upsert: true,
                },
            ),
            (
                json!({"collection": "c", "operation": "updateMany", "filter": {},
                       "update": [{"$set": {"b": "$a"}}]}),
                MongoOperation::UpdateMany {
                    filter: Document::new(),
                    update: UpdateSpec::Pipeline(vec![doc! {"$set": {"b": "$a"}}]),
                    upsert: false,
                },
            ),
            (
                json!({"collection": "c", "operation": "replaceOne", "filter": {"a": 1},
                       "replacement": {"a": 2}, "upsert": false}),
                MongoOperation::ReplaceOne {
                    filter: doc! {"a": 1},
                    replacement: doc! {"a": 2},
                    upsert: false,
                },
            ),
            (
                json!({"collection": "c", "operation": "deleteOne", "filter": {"a": 1}}),
                MongoOperation::DeleteOne { filter: doc! {"a": 1} },
            ),
            (
                json!({"collection": "c", "operation": "deleteMany", "filter": {}}),
                MongoOperation::DeleteMany {
                    filter: Document::new(),
                },
            ),
        ];
        for (json, expected) in cases {
            let command = structured(json.clone());
            assert_eq!(command.collection.as_deref(), Some("c"), "{json}");
            assert_eq!(command.operation, expected, "{json}");
        }
    }

    #[test]
    fn structured_list_collections() {
        let command = structured(json!({"operation": "listCollections"}));
        assert_eq!(command.collection, None);
        assert_eq!(command.operation, MongoOperation::ListCollections);
    }

    #[test]
    fn structured_canonical_extended_json() {
        let command = structured(json!({
            "collection": "c",
            "operation": "find",
            "filter": {
                "_id": {"$oid": "507f1f77bcf86cd799439011"},
                "at": {"$date": {"$numberLong": "1706704496789"}},
                "n": {"$numberLong": "5"},
                "i": {"$numberInt": "6"},
                "d": {"$numberDouble": "1.5"},
                "price": {"$numberDecimal": "1234567890.123456789012345678901234"},
                "bin": {"$binary": {"base64": "aGVsbG8=", "subType": "00"}},
                "re": {"$regularExpression": {"pattern": "^a", "options": "i"}},
                "ts": {"$timestamp": {"t": 1, "i": 2}},
                "min": {"$minKey": 1},
            },
            "limit": {"$numberLong": "10"},
        }));

        let MongoOperation::Find { filter, limit, .. } = command.operation else {
            panic!("expected find");
        };
        assert_eq!(limit, Some(10));
        assert_eq!(
            filter.get("_id"),
            Some(&Bson::ObjectId(ObjectId::from_bytes([
                0x50, 0x7f, 0x1f, 0x77, 0xbc, 0xf8, 0x6c, 0xd7, 0x99, 0x43, 0x90, 0x11,
            ])))
        );
        assert_eq!(
            filter.get("at"),
            Some(&Bson::DateTime(DateTime::from_millis(1_706_704_496_789)))
        );
        assert_eq!(filter.get("n"), Some(&Bson::Int64(5)));
        assert_eq!(filter.get("i"), Some(&Bson::Int32(6)));
        assert_eq!(filter.get("d"), Some(&Bson::Double(1.5)));
        assert_eq!(
            filter.get("price").map(ToString::to_string),
            Some("1234567890.123456789012345678901234".to_owned())
        );
        assert_eq!(
            filter.get("bin"),
            Some(&Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: b"hello".to_vec(),
            }))
        );
        assert_eq!(
            filter.get("re"),
            Some(&Bson::RegularExpression(Regex {
                pattern: "^a".to_owned(),
                options: "i".to_owned(),
            }))
        );
        assert_eq!(
            filter.get("ts"),
            Some(&Bson::Timestamp(Timestamp { time: 1, increment: 2 }))
        );
        assert_eq!(filter.get("min"), Some(&Bson::MinKey));
    }

    #[test]
    fn structured_relaxed_extended_json() {
        let command = structured(json!({
            "collection": "c",
            "operation": "insertOne",
            "document": {
                "at": {"$date": "2024-01-31T12:34:56.789Z"},
                "small": 5,
                "large": 5_000_000_000_i64,
                "ratio": 0.5,
                "tags": ["a", "b"],
            },
        }));
        let MongoOperation::InsertOne { document } = command.operation else {
            panic!("expected insertOne");
        };
        assert_eq!(
            document.get("at"),
            Some(&Bson::DateTime(DateTime::from_millis(1_706_704_496_789)))
        );
        assert_eq!(document.get("small"), Some(&Bson::Int32(5)));
        assert_eq!(document.get("large"), Some(&Bson::Int64(5_000_000_000)));
        assert_eq!(document.get("ratio"), Some(&Bson::Double(0.5)));
        assert_eq!(
            document.get("tags"),
            Some(&Bson::Array(vec![Bson::from("a"), Bson::from("b")]))
        );
    }

    #[test]
    fn structured_keeps_key_order() {
        let command = structured(json!({"collection": "c", "operation": "find", "sort": {"z": 1, "a": -1}}));
        let MongoOperation::Find { sort, .. } = command.operation else {
            panic!("expected find");
        };
        let keys: Vec<String> = sort.map(|sort| sort.keys().cloned().collect()).unwrap_or_default();
        assert_eq!(keys, ["z", "a"]);
    }

    #[test]
    fn structured_errors() {
        let cases = [
            (json!([]), "must be a JSON object"),
            (json!({"collection": "c"}), "missing field `operation`"),
            (
                json!({"collection": "c", "operation": 1}),
                "`operation` must be a string",
            ),
            (
                json!({"collection": "c", "operation": "drop"}),
                "unsupported operation `drop`",
            ),
            (json!({"operation": "find"}), "missing field `collection`"),
            (
                json!({"collection": 1, "operation": "find"}),
                "`collection` must be a string",
            ),
            (json!({"collection": "", "operation": "find"}), "must not be empty"),
            (
                json!({"collection": "c", "operation": "listCollections"}),
                "takes no collection",
            ),
            (
                json!({"collection": "c", "operation": "find", "pipeline": []}),
                "unknown field `pipeline`",
            ),
            (
                json!({"collection": "c", "operation": "find", "filter": []}),
                "filter must be a document",
            ),
            (
                json!({"collection": "c", "operation": "find", "filter": {"_id": {"$oid": "x"}}}),
                "invalid Extended JSON",
            ),
            (
                json!({"collection": "c", "operation": "find", "skip": -1}),
                "non-negative integer",
            ),
            (
                json!({"collection": "c", "operation": "find", "limit": "5"}),
                "limit must be an integer",
            ),
            (
                json!({"collection": "c", "operation": "find", "filter": {"a": 18_446_744_073_709_551_615_u64}}),
                "out of range",
            ),
            (
                json!({"collection": "c", "operation": "aggregate"}),
                "missing field `pipeline`",
            ),
            (
                json!({"collection": "c", "operation": "distinct"}),
                "missing field `field`",
            ),
            (
                json!({"collection": "c", "operation": "insertMany", "documents": []}),
                "at least one document",
            ),
            (
                json!({"collection": "c", "operation": "deleteMany"}),
                "missing field `filter`",
            ),
            (
                json!({"collection": "c", "operation": "deleteOne", "filter": null}),
                "missing field `filter`",
            ),
            (
                json!({"collection": "c", "operation": "updateOne", "filter": {}, "update": {"a": 1}}),
                "not an update operator",
            ),
            (
                json!({"collection": "c", "operation": "updateOne", "filter": {}, "update": {"$set": {}}, "upsert": "yes"}),
                "must be true or false",
            ),
            (
                json!({"collection": "c", "operation": "replaceOne", "filter": {}, "replacement": {"$set": {}}}),
                "must not contain update operators",
            ),
            (
                json!({"collection": "c", "operation": "countDocuments", "limit": 0}),
                "positive integer",
            ),
        ];
        for (json, message) in cases {
            let error = structured_error(json.clone());
            assert_eq!(error.offset, 0, "{json}: {error}");
            assert!(error.message.contains(message), "{json}: {error}");
        }
    }

    #[test]
    fn structured_nesting_depth_limit() {
        let mut inner = json!(1);
        for _ in 0..MAX_NESTING_DEPTH {
            inner = json!([inner]);
        }
        assert!(
            parse_structured(&json!({"collection": "c", "operation": "find", "filter": {"a": inner.clone()}})).is_err()
        );
        let within = json!({"collection": "c", "operation": "insertOne", "document": {"a": inner[0].clone()}});
        assert!(parse_structured(&within).is_ok());
    }

    #[test]
    fn parse_dispatches_by_first_character() {
        let from_json = parse(r#"  {"collection": "orders", "operation": "find", "filter": {"a": 1}}"#);
        let from_shell = parse("db.orders.find({a: 1})");
        assert_eq!(from_json, from_shell);
        assert_eq!(
            from_shell,
            Ok(MongoCommand {
                collection: Some("orders".to_owned()),
                operation: find(doc! {"a": 1}),
            })
        );
    }

    #[test]
    fn parse_json_syntax_error_offset() {
        let cases = [
            ("{\"collection\": \"c\",, }", 19),
            ("{\n  \"collection\": x\n}", 18),
            ("{\"collection\": \"c\"", 17),
        ];
        for (text, offset) in cases {
            let error = parse(text).expect_err(text);
            assert_eq!(error.offset, offset, "{text}: {error}");
            assert!(error.message.starts_with("invalid JSON"), "{text}: {error}");
        }
    }

    // Operation properties

    #[test]
    fn is_write_for_each_operation() {
        let cases = [
            ("db.c.find()", false),
            ("db.c.findOne()", false),
            ("db.c.aggregate([{$match: {}}])", false),
            ("db.c.aggregate([{$match: {}}, {$out: 'other'}])", true),
            ("db.c.aggregate([{$merge: {into: 'other'}}])", true),
            ("db.c.aggregate([{$facet: {a: [{$merge: 'x'}]}}])", true),
            ("db.c.countDocuments()", false),
            ("db.c.estimatedDocumentCount()", false),
            ("db.c.distinct('a')", false),
            ("db.c.insertOne({})", true),
            ("db.c.insertMany([{}])", true),
            ("db.c.updateOne({}, {$set: {a: 1}})", true),
            ("db.c.updateMany({}, {$set: {a: 1}})", true),
            ("db.c.replaceOne({}, {a: 1})", true),
            ("db.c.deleteOne({})", true),
            ("db.c.deleteMany({})", true),
            ("show collections", false),
        ];
        for (text, expected) in cases {
            assert_eq!(operation(text).is_write(), expected, "{text}");
        }
    }

    #[test]
    fn name_for_each_operation() {
        let cases = [
            ("db.c.find()", "find"),
            ("db.c.findOne()", "findOne"),
            ("db.c.aggregate([])", "aggregate"),
            ("db.c.countDocuments()", "countDocuments"),
            ("db.c.count()", "countDocuments"),
            ("db.c.estimatedDocumentCount()", "estimatedDocumentCount"),
            ("db.c.distinct('a')", "distinct"),
            ("db.c.insertOne({})", "insertOne"),
            ("db.c.insertMany([{}])", "insertMany"),
            ("db.c.updateOne({}, {$set: {a: 1}})", "updateOne"),
            ("db.c.updateMany({}, {$set: {a: 1}})", "updateMany"),
            ("db.c.replaceOne({}, {a: 1})", "replaceOne"),
            ("db.c.deleteOne({})", "deleteOne"),
            ("db.c.deleteMany({})", "deleteMany"),
            ("db.getCollectionNames()", "listCollections"),
        ];
        for (text, expected) in cases {
            assert_eq!(operation(text).name(), expected, "{text}");
        }
    }

    #[test]
    fn structured_operation_names_match_name() {
        let command = structured(json!({"collection": "c", "operation": "estimatedDocumentCount"}));
        assert_eq!(command.operation.name(), "estimatedDocumentCount");
    }
}
