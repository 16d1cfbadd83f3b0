//! Splitting of SQL text into statements, for PostgreSQL, MySQL/MariaDB and SQLite.
//!
//! [`split`] finds the `;` that end statements and never splits inside strings, quoted identifiers, comments or
//! dollar-quoted bodies. It follows each database's lexical rules, summarised on [`Dialect`], in one pass over the
//! input, so its running time is linear in the input length.
//!
//! Client commands are not SQL and are not supported. MySQL's `DELIMITER` and psql's backslash commands (such as
//! `\gset`) are kept as ordinary text. So a MySQL compound statement such as `CREATE PROCEDURE p() BEGIN ...; END`
//! is split at each `;` of its body.
//!
//! The lexer works on bytes. Each position where it slices the input is the start or end of the input or is next
//! to an ASCII byte. The bytes of a multi-byte UTF-8 character are never ASCII, so every slice is on a char boundary.

/// SQL dialect whose lexical rules [`split`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL: `"..."` identifiers, `E'...'` strings with backslash escapes, `$tag$...$tag$` dollar quoting and
    /// nested block comments. Plain `'...'` strings have no backslash escapes, as with `standard_conforming_strings`
    /// on, the default since PostgreSQL 9.1.
    Postgres,
    /// MySQL and MariaDB: `"..."` strings, `` `...` `` identifiers, backslash escapes in strings, `#` comments, and
    /// `--` comments only before whitespace, a control character or the end of the input.
    MySql,
    /// SQLite: `"..."`, `` `...` `` and `[...]` identifiers and no backslash escapes. A block comment that is never
    /// closed runs to the end of the input, as SQLite reads it.
    Sqlite,
}

/// One statement of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The statement's text without its terminating `;`, trimmed of ASCII whitespace. Comments inside or before it
    /// are kept, so the text can end with a `--` comment.
    pub text: &'a str,
    /// Byte offset of `text` in the input.
    pub offset: usize,
    /// First keyword in upper case (ASCII), after leading whitespace, comments and opening parentheses. `None` when
    /// the statement starts with something else, such as a number, a string, a quoted identifier or a MySQL
    /// executable comment (`/*! ... */`).
    pub keyword: Option<String>,
}

/// Error of [`split`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SplitError {
    /// A string, quoted identifier, block comment or dollar-quoted string is still open at the end of the input.
    /// `what` is "string", "quoted identifier", "block comment" or "dollar-quoted string", and `offset` is the byte
    /// offset of the opening delimiter (of the `E` for an `E'...'` string).
    #[error("unterminated {what} starting at byte {offset}")]
    Unterminated { what: &'static str, offset: usize },
}

/// Splits `sql` into its statements, in input order.
///
/// A `;` ends a statement unless it is inside a string, quoted identifier, comment or dollar-quoted body. As in psql,
/// a PostgreSQL `;` also does not end a statement inside parentheses or inside the `BEGIN ... END` body of
/// `CREATE FUNCTION` or `CREATE PROCEDURE`. A SQLite `;` does not end a statement inside the `BEGIN ... END` body of
/// `CREATE TRIGGER`. Statements that contain only whitespace and comments are dropped, and a last statement without
/// `;` is included.
///
/// # Errors
///
/// [`SplitError::Unterminated`] when a string, quoted identifier, block comment or dollar-quoted string is still
/// open at the end of the input. SQLite block comments are the exception (see [`Dialect::Sqlite`]).
pub fn split(sql: &str, dialect: Dialect) -> Result<Vec<Statement<'_>>, SplitError> {
    let mut lexer = Lexer::new(sql, dialect);
    let mut statements = Vec::new();
    let mut current = StatementScan::new(0, dialect);

    while let Some(token) = lexer.next_token()? {
        if token.kind == TokenKind::Semicolon && current.ends_at_semicolon() {
            statements.extend(current.finish(sql, token.start));
            current = StatementScan::new(token.end, dialect);
        } else {
            current.observe(token, slice(sql, token.start, token.end));
        }
    }

    statements.extend(current.finish(sql, sql.len()));
    Ok(statements)
}

/// Returns `sql[start..end]`. Callers pass only char boundaries (see the module documentation), so the empty
/// fallback is never taken.
fn slice(sql: &str, start: usize, end: usize) -> &str {
    sql.get(start..end).unwrap_or_default()
}

/// Whitespace that the lexer skips and trims: ASCII space, tab, line feed, carriage return, vertical tab and form feed.
fn is_space_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn is_space(byte: u8) -> bool {
    is_space_char(char::from(byte))
}

/// First byte of an unquoted identifier or keyword. Every non-ASCII byte counts, as in PostgreSQL's lexer.
fn is_word_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || !byte.is_ascii()
}

fn is_word_continue(byte: u8) -> bool {
    is_word_start(byte) || byte.is_ascii_digit() || byte == b'$'
}

/// Kind of a token that is not whitespace or a comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenKind {
    /// Unquoted identifier or keyword.
    Word,
    Semicolon,
    OpenParen,
    CloseParen,
    /// Anything else: a string, quoted identifier, number, operator, parameter or MySQL executable comment.
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Token {
    kind: TokenKind,
    start: usize,
    end: usize,
}

/// Lexer that returns the tokens of SQL text and skips whitespace and comments.
struct Lexer<'a> {
    sql: &'a str,
    bytes: &'a [u8],
    /// Byte offset of the next byte to read.
    pos: usize,
    dialect: Dialect,
}

impl<'a> Lexer<'a> {
    fn new(sql: &'a str, dialect: Dialect) -> Self {
        Self {
            sql,
            bytes: sql.as_bytes(),
            pos: 0,
            dialect,
        }
    }

    fn byte_at(&self, index: usize) -> Option<u8> {
        self.bytes.get(index).copied()
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.byte_at(self.pos.saturating_add(ahead))
    }

    /// Reads the next token that is not whitespace or a comment. Returns `None` at the end of the input.
    fn next_token(&mut self) -> Result<Option<Token>, SplitError> {
        loop {
            let start = self.pos;
            let Some(byte) = self.peek(0) else {
                return Ok(None);
            };

            let kind = match byte {
                b';' => {
                    self.pos += 1;
                    TokenKind::Semicolon
                }
                b'(' => {
                    self.pos += 1;
                    TokenKind::OpenParen
                }
                b')' => {
                    self.pos += 1;
                    TokenKind::CloseParen
                }
                b'-' if self.at_dash_comment() => {
                    self.skip_line_comment();
                    continue;
                }
                b'#' if self.dialect == Dialect::MySql => {
                    self.skip_line_comment();
                    continue;
                }
                b'/' if self.peek(1) == Some(b'*') => {
                    // NOTE: MySQL runs the contents of an executable comment as SQL, so with multi-statements enabled
                    // the server may end a statement at a `;` inside one. This lexer keeps the whole comment in one
                    // statement, and `keyword` does not look inside it.
                    let executable = self.at_executable_comment();
                    self.skip_block_comment()?;
                    if !executable {
                        continue;
                    }
                    TokenKind::Other
                }
                b'\'' => {
                    // NOTE: PostgreSQL with standard_conforming_strings off, and MySQL in NO_BACKSLASH_ESCAPES mode,
                    // read backslashes in plain strings differently from this, which can move a split.
                    let backslash_escapes = self.dialect == Dialect::MySql;
                    self.skip_quoted(start, backslash_escapes, "string")?;
                    TokenKind::Other
                }
                b'"' => {
                    // MySQL in ANSI_QUOTES mode reads `"..."` as an identifier without backslash escapes. This lexer
                    // assumes the default mode.
                    if self.dialect == Dialect::MySql {
                        self.skip_quoted(start, true, "string")?;
                    } else {
                        self.skip_quoted(start, false, "quoted identifier")?;
                    }
                    TokenKind::Other
                }
                b'`' if self.dialect != Dialect::Postgres => {
                    self.skip_quoted(start, false, "quoted identifier")?;
                    TokenKind::Other
                }
                b'[' if self.dialect == Dialect::Sqlite => {
                    self.skip_bracketed()?;
                    TokenKind::Other
                }
                b'$' if self.dialect == Dialect::Postgres => {
                    self.skip_dollar()?;
                    TokenKind::Other
                }
                b'e' | b'E' if self.dialect == Dialect::Postgres && self.peek(1) == Some(b'\'') => {
                    // A word is always read whole, so this `E` starts a token. `E'...'` is then an escape string,
                    // while `some'...'` is a word followed by a plain string, as in PostgreSQL.
                    self.pos += 1;
                    self.skip_quoted(start, true, "string")?;
                    TokenKind::Other
                }
                byte if is_space(byte) => {
                    self.pos += 1;
                    continue;
                }
                byte if is_word_start(byte) => {
                    while self.peek(0).is_some_and(is_word_continue) {
                        self.pos += 1;
                    }
                    TokenKind::Word
                }
                _ => {
                    self.pos += 1;
                    TokenKind::Other
                }
            };

            return Ok(Some(Token {
                kind,
                start,
                end: self.pos,
            }));
        }
    }

    /// Returns whether a `--` line comment starts at the current position.
    fn at_dash_comment(&self) -> bool {
        if self.peek(1) != Some(b'-') {
            return false;
        }
        match self.dialect {
            // MySQL's lexer (sql/sql_lex.cc) reads `--` as a comment only before whitespace or a control character,
            // so `1--1` is 1 minus minus 1. Every ASCII whitespace byte other than the space is a control character.
            Dialect::MySql => self.peek(2).is_none_or(|byte| byte == b' ' || byte.is_ascii_control()),
            Dialect::Postgres | Dialect::Sqlite => true,
        }
    }

    /// Returns whether a MySQL or MariaDB executable comment (`/*! ... */` or `/*M! ... */`) starts at the current
    /// position.
    fn at_executable_comment(&self) -> bool {
        self.dialect == Dialect::MySql
            && (self.peek(2) == Some(b'!') || (self.peek(2) == Some(b'M') && self.peek(3) == Some(b'!')))
    }

    /// Skips a line comment up to its line break, which is left for the whitespace rule.
    fn skip_line_comment(&mut self) {
        while let Some(byte) = self.peek(0) {
            // PostgreSQL also ends a line comment at `\r`. MySQL and SQLite end it at `\n` only.
            if byte == b'\n' || (byte == b'\r' && self.dialect == Dialect::Postgres) {
                break;
            }
            self.pos += 1;
        }
    }

    /// Skips a block comment that starts at the current position. Only PostgreSQL nests block comments.
    fn skip_block_comment(&mut self) -> Result<(), SplitError> {
        let start = self.pos;
        self.pos += 2;
        let mut depth = 1_usize;
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(b'*'), Some(b'/')) => {
                    self.pos += 2;
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                (Some(b'/'), Some(b'*')) if self.dialect == Dialect::Postgres => {
                    self.pos += 2;
                    depth += 1;
                }
                (Some(_), _) => self.pos += 1,
                (None, _) if self.dialect == Dialect::Sqlite => return Ok(()),
                (None, _) => {
                    return Err(SplitError::Unterminated {
                        what: "block comment",
                        offset: start,
                    });
                }
            }
        }
    }

    /// Skips a string or quoted identifier whose opening quote is at the current position. A doubled quote stands
    /// for one quote. With `backslash_escapes`, a backslash escapes the byte after it.
    fn skip_quoted(
        &mut self,
        token_start: usize,
        backslash_escapes: bool,
        what: &'static str,
    ) -> Result<(), SplitError> {
        let Some(quote) = self.peek(0) else {
            return Err(SplitError::Unterminated {
                what,
                offset: token_start,
            });
        };
        self.pos += 1;
        loop {
            match self.peek(0) {
                None => {
                    return Err(SplitError::Unterminated {
                        what,
                        offset: token_start,
                    });
                }
                // Skipping one byte after the backslash can land inside a multi-byte character. That is harmless
                // because the loop only looks for ASCII bytes.
                Some(b'\\') if backslash_escapes => self.pos += 2,
                Some(byte) if byte == quote => {
                    if self.peek(1) == Some(quote) {
                        self.pos += 2;
                    } else {
                        self.pos += 1;
                        return Ok(());
                    }
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// Skips a SQLite `[...]` identifier, which has no escapes.
    fn skip_bracketed(&mut self) -> Result<(), SplitError> {
        let start = self.pos;
        let rest = self.bytes.get(start + 1..).unwrap_or_default();
        match rest.iter().position(|&byte| byte == b']') {
            Some(index) => {
                self.pos = start + 1 + index + 1;
                Ok(())
            }
            None => Err(SplitError::Unterminated {
                what: "quoted identifier",
                offset: start,
            }),
        }
    }

    /// Skips what a PostgreSQL `$` starts: a positional parameter (`$1`), a dollar-quoted string (`$$...$$` or
    /// `$tag$...$tag$`), or else the `$` alone.
    fn skip_dollar(&mut self) -> Result<(), SplitError> {
        let start = self.pos;
        self.pos += 1;
        if self.peek(0).is_some_and(|byte| byte.is_ascii_digit()) {
            while self.peek(0).is_some_and(|byte| byte.is_ascii_digit()) {
                self.pos += 1;
            }
            return Ok(());
        }

        // A tag is an identifier without `$`, so it cannot start with a digit.
        let mut tag_end = self.pos;
        if self.byte_at(tag_end).is_some_and(is_word_start) {
            tag_end += 1;
            while self
                .byte_at(tag_end)
                .is_some_and(|byte| is_word_start(byte) || byte.is_ascii_digit())
            {
                tag_end += 1;
            }
        }
        if self.byte_at(tag_end) != Some(b'$') {
            // Not a dollar quote: the lexer goes on after the `$`, so a following tag-like word is read as a word.
            return Ok(());
        }

        // The body ends at the first copy of the opening delimiter, as in PostgreSQL's lexer. `str::find` runs in
        // linear time.
        let body_start = tag_end + 1;
        let delimiter = slice(self.sql, start, body_start);
        match slice(self.sql, body_start, self.sql.len()).find(delimiter) {
            Some(index) => {
                self.pos = body_start + index + delimiter.len();
                Ok(())
            }
            None => Err(SplitError::Unterminated {
                what: "dollar-quoted string",
                offset: start,
            }),
        }
    }
}

/// State of the statement being scanned: where it starts, its keyword and whether a `;` would end it.
struct StatementScan {
    /// Byte offset after the previous statement's `;`, or 0.
    start: usize,
    /// Whether any token has been seen, so that comment-only statements can be dropped.
    has_tokens: bool,
    /// Whether the keyword has been decided, by the first token other than `(`.
    keyword_decided: bool,
    keyword: Option<String>,
    paren_depth: usize,
    body: BodyTracker,
}

impl StatementScan {
    fn new(start: usize, dialect: Dialect) -> Self {
        let body = match dialect {
            Dialect::Postgres => BodyTracker::Routine(RoutineBody::default()),
            Dialect::MySql => BodyTracker::None,
            Dialect::Sqlite => BodyTracker::Trigger(TriggerBody::Start),
        };
        Self {
            start,
            has_tokens: false,
            keyword_decided: false,
            keyword: None,
            paren_depth: 0,
            body,
        }
    }

    /// Returns whether a `;` at the current position ends the statement.
    fn ends_at_semicolon(&self) -> bool {
        match &self.body {
            // As in psql, a `;` inside parentheses does not end the statement. PostgreSQL accepts such a `;` in the
            // action list of `CREATE RULE`.
            BodyTracker::Routine(routine) => self.paren_depth == 0 && routine.depth == 0,
            BodyTracker::None => true,
            BodyTracker::Trigger(trigger) => !matches!(trigger, TriggerBody::BodyStatementStart | TriggerBody::Body),
        }
    }

    /// Records a token of the statement. `text` is the token's text.
    fn observe(&mut self, token: Token, text: &str) {
        self.has_tokens = true;

        match token.kind {
            TokenKind::OpenParen => self.paren_depth += 1,
            TokenKind::CloseParen => self.paren_depth = self.paren_depth.saturating_sub(1),
            _ => {}
        }

        if !self.keyword_decided && token.kind != TokenKind::OpenParen {
            self.keyword_decided = true;
            if token.kind == TokenKind::Word && text.starts_with(|c: char| c.is_ascii_alphabetic()) {
                self.keyword = Some(text.to_ascii_uppercase());
            }
        }

        let word = (token.kind == TokenKind::Word).then_some(text);
        match &mut self.body {
            BodyTracker::Routine(routine) => routine.observe(word, self.paren_depth),
            BodyTracker::None => {}
            BodyTracker::Trigger(trigger) => trigger.observe(token.kind, word),
        }
    }

    /// Returns the statement that ends at byte `end`, or `None` when it contains only whitespace and comments.
    fn finish(self, sql: &str, end: usize) -> Option<Statement<'_>> {
        if !self.has_tokens {
            return None;
        }
        let chunk = slice(sql, self.start, end);
        let without_leading_space = chunk.trim_start_matches(is_space_char);
        Some(Statement {
            text: without_leading_space.trim_end_matches(is_space_char),
            offset: self.start + (chunk.len() - without_leading_space.len()),
            keyword: self.keyword,
        })
    }
}

/// Tracker of the dialect's statement bodies whose `;` do not end the statement.
enum BodyTracker {
    /// PostgreSQL routine bodies.
    Routine(RoutineBody),
    /// MySQL: none. A compound statement such as `CREATE PROCEDURE p() BEGIN ...; END` is split at each `;`, as the
    /// mysql client splits it without `DELIMITER`.
    None,
    /// SQLite trigger bodies.
    Trigger(TriggerBody),
}

/// PostgreSQL `BEGIN ATOMIC ... END` routine body, found with psql's heuristic from src/fe_utils/psqlscan.l. In a
/// statement that starts with `CREATE [OR REPLACE] {FUNCTION | PROCEDURE}` and outside parentheses, `BEGIN` opens a
/// block, `CASE` opens one only inside a block, and `END` closes one.
#[derive(Default)]
struct RoutineBody {
    prefix: RoutinePrefix,
    /// Number of open `BEGIN` and `CASE` blocks.
    depth: usize,
}

/// Position in the `CREATE [OR REPLACE] {FUNCTION | PROCEDURE}` prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum RoutinePrefix {
    #[default]
    Start,
    Create,
    CreateOr,
    CreateOrReplace,
    /// The whole prefix has been read.
    Routine,
    /// The statement does not start with the prefix.
    Other,
}

impl RoutineBody {
    /// Records a token. `word` is the token's text when it is a word, and `paren_depth` is the parenthesis depth.
    fn observe(&mut self, word: Option<&str>, paren_depth: usize) {
        let is = |keyword: &str| word.is_some_and(|word| word.eq_ignore_ascii_case(keyword));
        let is_routine_kind = is("FUNCTION") || is("PROCEDURE");

        let previous = self.prefix;
        self.prefix = match previous {
            RoutinePrefix::Start if is("CREATE") => RoutinePrefix::Create,
            RoutinePrefix::Create if is("OR") => RoutinePrefix::CreateOr,
            RoutinePrefix::CreateOr if is("REPLACE") => RoutinePrefix::CreateOrReplace,
            RoutinePrefix::Create | RoutinePrefix::CreateOrReplace if is_routine_kind => RoutinePrefix::Routine,
            RoutinePrefix::Routine => RoutinePrefix::Routine,
            _ => RoutinePrefix::Other,
        };

        if previous != RoutinePrefix::Routine || paren_depth > 0 {
            return;
        }
        if is("BEGIN") || (is("CASE") && self.depth > 0) {
            self.depth += 1;
        } else if is("END") {
            self.depth = self.depth.saturating_sub(1);
        }
    }
}

/// Position in a SQLite `[EXPLAIN [QUERY PLAN]] CREATE [TEMP | TEMPORARY] TRIGGER ... BEGIN ... END` statement.
///
/// Inside the body, a `;` ends a body statement, not the trigger. The body closes at an `END` that starts a body
/// statement, as in SQLite's sqlite3_complete(), which ends a trigger only at `; END ;`. So neither `CASE ... END` nor
/// a column named `end` closes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TriggerBody {
    /// Before the first token.
    Start,
    /// After `EXPLAIN`.
    Explain,
    /// After `EXPLAIN QUERY`.
    ExplainQuery,
    /// After `EXPLAIN QUERY PLAN`.
    ExplainQueryPlan,
    /// After `CREATE`.
    Create,
    /// After `CREATE TEMP` or `CREATE TEMPORARY`.
    CreateTemp,
    /// After `TRIGGER`, before `BEGIN`.
    Header,
    /// Inside the body, right after `BEGIN` or a `;`.
    BodyStatementStart,
    /// Inside a statement of the body.
    Body,
    /// Not a trigger, or after the body's `END`.
    Other,
}

impl TriggerBody {
    /// Records a token. `word` is the token's text when it is a word.
    fn observe(&mut self, kind: TokenKind, word: Option<&str>) {
        let is = |keyword: &str| word.is_some_and(|word| word.eq_ignore_ascii_case(keyword));

        *self = match *self {
            Self::Start if is("EXPLAIN") => Self::Explain,
            Self::Explain if is("QUERY") => Self::ExplainQuery,
            Self::ExplainQuery if is("PLAN") => Self::ExplainQueryPlan,
            Self::Start | Self::Explain | Self::ExplainQueryPlan if is("CREATE") => Self::Create,
            Self::Create if is("TEMP") || is("TEMPORARY") => Self::CreateTemp,
            Self::Create | Self::CreateTemp if is("TRIGGER") => Self::Header,
            Self::Header if is("BEGIN") => Self::BodyStatementStart,
            Self::Header => Self::Header,
            Self::BodyStatementStart if is("END") => Self::Other,
            Self::BodyStatementStart | Self::Body if kind == TokenKind::Semicolon => Self::BodyStatementStart,
            Self::BodyStatementStart | Self::Body => Self::Body,
            _ => Self::Other,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_DIALECTS: [Dialect; 3] = [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];

    fn texts(sql: &str, dialect: Dialect) -> Result<Vec<&str>, SplitError> {
        Ok(split(sql, dialect)?
            .into_iter()
            .map(|statement| statement.text)
            .collect())
    }

    /// Checks each case of a table: (name, input, expected statement texts).
    fn check_texts(dialect: Dialect, cases: &[(&str, &str, &[&str])]) -> Result<(), SplitError> {
        for &(name, sql, expected) in cases {
            assert_eq!(texts(sql, dialect)?, expected, "{dialect:?}: {name}");
        }
        Ok(())
    }

    #[test]
    fn split_common_cases() -> Result<(), SplitError> {
        let cases: &[(&str, &str, &[&str])] = &[
            ("simple", "SELECT 1; SELECT 2;", &["SELECT 1", "SELECT 2"]),
            (
                "last without semicolon",
                "SELECT 1; SELECT 2",
                &["SELECT 1", "SELECT 2"],
            ),
            ("whitespace trimmed", "\n  SELECT 1  \n;\n\t", &["SELECT 1"]),
            ("empty input", "", &[]),
            ("whitespace only", " \n\t ", &[]),
            ("empty statements", ";;", &[]),
            (
                "empty statements between",
                "SELECT 1;; ;\n; SELECT 2",
                &["SELECT 1", "SELECT 2"],
            ),
            ("line comment only", "-- hi\n;", &[]),
            ("block comment only", "/* hi */;", &[]),
            ("comment after last", "SELECT 1; -- bye", &["SELECT 1"]),
            (
                "comment before kept",
                "SELECT 1;\n-- two\nSELECT 2",
                &["SELECT 1", "-- two\nSELECT 2"],
            ),
            ("comment inside kept", "SELECT /* c */ 1", &["SELECT /* c */ 1"]),
            (
                "semicolon in string",
                "SELECT 'a;b'; SELECT 2",
                &["SELECT 'a;b'", "SELECT 2"],
            ),
            (
                "doubled quote",
                "SELECT 'it''s;'; SELECT 2",
                &["SELECT 'it''s;'", "SELECT 2"],
            ),
            (
                "semicolon in line comment",
                "SELECT 1 -- a;b\n; SELECT 2",
                &["SELECT 1 -- a;b", "SELECT 2"],
            ),
            (
                "semicolon in block comment",
                "SELECT 1 /* a;b */; SELECT 2",
                &["SELECT 1 /* a;b */", "SELECT 2"],
            ),
            (
                "utf8 in string",
                "SELECT 'héllo; 東京'; SELECT 2",
                &["SELECT 'héllo; 東京'", "SELECT 2"],
            ),
            (
                "utf8 in comment",
                "SELECT 1 /* é; 東 */; SELECT 2",
                &["SELECT 1 /* é; 東 */", "SELECT 2"],
            ),
            (
                "utf8 words",
                "SELECT 1 AS 東京;SELECT 2 AS é",
                &["SELECT 1 AS 東京", "SELECT 2 AS é"],
            ),
            ("transaction", "BEGIN; SELECT 1; END;", &["BEGIN", "SELECT 1", "END"]),
        ];
        for dialect in ALL_DIALECTS {
            check_texts(dialect, cases)?;
        }
        Ok(())
    }

    #[test]
    fn split_postgres_cases() -> Result<(), SplitError> {
        check_texts(
            Dialect::Postgres,
            &[
                (
                    "quoted identifier",
                    r#"SELECT 1 AS "a;b"; SELECT 2"#,
                    &[r#"SELECT 1 AS "a;b""#, "SELECT 2"],
                ),
                (
                    "doubled double quote",
                    r#"SELECT 1 AS "a"";b"; SELECT 2"#,
                    &[r#"SELECT 1 AS "a"";b""#, "SELECT 2"],
                ),
                (
                    "backslash in plain string",
                    r"SELECT 'a\'; SELECT 2",
                    &[r"SELECT 'a\'", "SELECT 2"],
                ),
                (
                    "E-string",
                    r"SELECT E'it\'s;'; SELECT 2",
                    &[r"SELECT E'it\'s;'", "SELECT 2"],
                ),
                (
                    "lower-case e-string",
                    r"SELECT e'it\'s;'; SELECT 2",
                    &[r"SELECT e'it\'s;'", "SELECT 2"],
                ),
                (
                    "E-string doubled quote",
                    "SELECT E'a'';b'; SELECT 2",
                    &["SELECT E'a'';b'", "SELECT 2"],
                ),
                (
                    "E-string escaped backslash",
                    r"SELECT E'a\\'; SELECT 2",
                    &[r"SELECT E'a\\'", "SELECT 2"],
                ),
                (
                    "word ending in e",
                    r"SELECT one'\'; SELECT 2",
                    &[r"SELECT one'\'", "SELECT 2"],
                ),
                ("U& string", r"SELECT U&'a\'; SELECT 2", &[r"SELECT U&'a\'", "SELECT 2"]),
                (
                    "dollar quote",
                    "SELECT $$a;b$$; SELECT 2",
                    &["SELECT $$a;b$$", "SELECT 2"],
                ),
                (
                    "dollar quote with $",
                    "SELECT $$a $ b;$$; SELECT 2",
                    &["SELECT $$a $ b;$$", "SELECT 2"],
                ),
                (
                    "tagged dollar quote",
                    "SELECT $fn$ $$; $ $fn$; SELECT 2",
                    &["SELECT $fn$ $$; $ $fn$", "SELECT 2"],
                ),
                (
                    "tag with digits",
                    "SELECT $a1$;$a1$; SELECT 2",
                    &["SELECT $a1$;$a1$", "SELECT 2"],
                ),
                (
                    "other tag inside",
                    "SELECT $a$ $b$; $a$; SELECT 2",
                    &["SELECT $a$ $b$; $a$", "SELECT 2"],
                ),
                (
                    "adjacent dollar quotes",
                    "SELECT $$;$$||$$;$$; SELECT 2",
                    &["SELECT $$;$$||$$;$$", "SELECT 2"],
                ),
                ("utf8 tag", "SELECT $é$;$é$; SELECT 2", &["SELECT $é$;$é$", "SELECT 2"]),
                (
                    "plpgsql body",
                    "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql; SELECT 2",
                    &[
                        "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql",
                        "SELECT 2",
                    ],
                ),
                ("parameters", "SELECT $1; SELECT $2", &["SELECT $1", "SELECT $2"]),
                (
                    "parameter then dollar quote",
                    "SELECT $1, $$;$$; SELECT 2",
                    &["SELECT $1, $$;$$", "SELECT 2"],
                ),
                (
                    "dollar in identifier",
                    "SELECT a$b$; SELECT 2",
                    &["SELECT a$b$", "SELECT 2"],
                ),
                ("lone dollar", "SELECT $x; SELECT 2", &["SELECT $x", "SELECT 2"]),
                (
                    "nested comment",
                    "SELECT /* a /* b */ ; */ 1; SELECT 2",
                    &["SELECT /* a /* b */ ; */ 1", "SELECT 2"],
                ),
                (
                    "carriage return ends comment",
                    "SELECT 1 -- c\r; SELECT 2",
                    &["SELECT 1 -- c", "SELECT 2"],
                ),
                (
                    "dash dash without space",
                    "SELECT 1 --1; SELECT 2\n; SELECT 3",
                    &["SELECT 1 --1; SELECT 2", "SELECT 3"],
                ),
                (
                    "semicolon in parentheses",
                    "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); DELETE FROM b); SELECT 2",
                    &[
                        "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); DELETE FROM b)",
                        "SELECT 2",
                    ],
                ),
                (
                    "begin atomic",
                    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT f()",
                    &[
                        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
                        "SELECT f()",
                    ],
                ),
                (
                    "begin atomic with case",
                    "create or replace procedure p() begin atomic select case when true then 1 end; end; call p()",
                    &[
                        "create or replace procedure p() begin atomic select case when true then 1 end; end",
                        "call p()",
                    ],
                ),
                (
                    "begin in parentheses",
                    "CREATE PROCEDURE p(begin int) LANGUAGE sql AS $$ SELECT 1 $$; SELECT 2",
                    &[
                        "CREATE PROCEDURE p(begin int) LANGUAGE sql AS $$ SELECT 1 $$",
                        "SELECT 2",
                    ],
                ),
                (
                    "case outside body",
                    "CREATE FUNCTION f(x int) RETURNS int RETURN CASE WHEN x > 0 THEN 1 END; SELECT 2",
                    &[
                        "CREATE FUNCTION f(x int) RETURNS int RETURN CASE WHEN x > 0 THEN 1 END",
                        "SELECT 2",
                    ],
                ),
            ],
        )
    }

    #[test]
    fn split_mysql_cases() -> Result<(), SplitError> {
        check_texts(
            Dialect::MySql,
            &[
                (
                    "double-quoted string",
                    r#"SELECT "a;b"; SELECT 2"#,
                    &[r#"SELECT "a;b""#, "SELECT 2"],
                ),
                (
                    "backslash quote",
                    r"SELECT 'it\'s;'; SELECT 2",
                    &[r"SELECT 'it\'s;'", "SELECT 2"],
                ),
                (
                    "backslash double quote",
                    r#"SELECT "a\";"; SELECT 2"#,
                    &[r#"SELECT "a\";""#, "SELECT 2"],
                ),
                (
                    "escaped backslash",
                    r"SELECT 'a\\'; SELECT 2",
                    &[r"SELECT 'a\\'", "SELECT 2"],
                ),
                (
                    "doubled double quote",
                    r#"SELECT "a"";b"; SELECT 2"#,
                    &[r#"SELECT "a"";b""#, "SELECT 2"],
                ),
                (
                    "backtick identifier",
                    "SELECT 1 AS `a;b`; SELECT 2",
                    &["SELECT 1 AS `a;b`", "SELECT 2"],
                ),
                (
                    "doubled backtick",
                    "SELECT 1 AS `a``;b`; SELECT 2",
                    &["SELECT 1 AS `a``;b`", "SELECT 2"],
                ),
                (
                    "backslash in backticks",
                    r"SELECT 1 AS `a\`; SELECT 2",
                    &[r"SELECT 1 AS `a\`", "SELECT 2"],
                ),
                (
                    "hash comment",
                    "SELECT 1 # a;b\n; SELECT 2",
                    &["SELECT 1 # a;b", "SELECT 2"],
                ),
                ("minus minus one", "SELECT 1--1; SELECT 2", &["SELECT 1--1", "SELECT 2"]),
                (
                    "dash dash tab",
                    "SELECT 1 --\ta;b\n; SELECT 2",
                    &["SELECT 1 --\ta;b", "SELECT 2"],
                ),
                ("dash dash at end", "SELECT 1; --", &["SELECT 1"]),
                (
                    "comments do not nest",
                    "SELECT /* a /* b */ 1; SELECT 2",
                    &["SELECT /* a /* b */ 1", "SELECT 2"],
                ),
                (
                    "executable comment",
                    "SELECT /*!50000 1; */ 2; SELECT 3",
                    &["SELECT /*!50000 1; */ 2", "SELECT 3"],
                ),
                (
                    "executable comment kept",
                    "/*!40101 SET NAMES utf8mb4 */;",
                    &["/*!40101 SET NAMES utf8mb4 */"],
                ),
                (
                    "MariaDB executable comment",
                    "/*M!100100 SET a = 1 */;",
                    &["/*M!100100 SET a = 1 */"],
                ),
                (
                    "optimizer hint",
                    "SELECT /*+ BKA(t) */ 1; SELECT 2",
                    &["SELECT /*+ BKA(t) */ 1", "SELECT 2"],
                ),
                (
                    "dollar is not a quote",
                    "SELECT $$; SELECT 2$$",
                    &["SELECT $$", "SELECT 2$$"],
                ),
                (
                    "procedure body split",
                    "CREATE PROCEDURE p() BEGIN SELECT 1; END",
                    &["CREATE PROCEDURE p() BEGIN SELECT 1", "END"],
                ),
            ],
        )
    }

    #[test]
    fn split_sqlite_cases() -> Result<(), SplitError> {
        check_texts(
            Dialect::Sqlite,
            &[
                (
                    "double-quoted identifier",
                    r#"SELECT 1 AS "a;b"; SELECT 2"#,
                    &[r#"SELECT 1 AS "a;b""#, "SELECT 2"],
                ),
                (
                    "doubled double quote",
                    r#"SELECT 1 AS "a"";b"; SELECT 2"#,
                    &[r#"SELECT 1 AS "a"";b""#, "SELECT 2"],
                ),
                (
                    "backtick identifier",
                    "SELECT 1 AS `a;b`; SELECT 2",
                    &["SELECT 1 AS `a;b`", "SELECT 2"],
                ),
                (
                    "bracket identifier",
                    "SELECT 1 AS [a;b]; SELECT 2",
                    &["SELECT 1 AS [a;b]", "SELECT 2"],
                ),
                (
                    "no backslash escapes",
                    r"SELECT 'a\'; SELECT 2",
                    &[r"SELECT 'a\'", "SELECT 2"],
                ),
                (
                    "dash dash without space",
                    "SELECT 1 --1; SELECT 2\n; SELECT 3",
                    &["SELECT 1 --1; SELECT 2", "SELECT 3"],
                ),
                (
                    "comments do not nest",
                    "SELECT /* a /* b */ 1; SELECT 2",
                    &["SELECT /* a /* b */ 1", "SELECT 2"],
                ),
                ("open comment runs to end", "SELECT 1; /* a; SELECT 2", &["SELECT 1"]),
                ("open comment after text", "SELECT 1 /* a; b", &["SELECT 1 /* a; b"]),
                (
                    "dollar is not a quote",
                    "SELECT $a; SELECT 2",
                    &["SELECT $a", "SELECT 2"],
                ),
                (
                    "trigger body",
                    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (1); DELETE FROM q; END; SELECT 1",
                    &[
                        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (1); DELETE FROM q; END",
                        "SELECT 1",
                    ],
                ),
                (
                    "temp trigger",
                    "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM q; END; SELECT 1",
                    &[
                        "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM q; END",
                        "SELECT 1",
                    ],
                ),
                (
                    "temporary trigger lower case",
                    "create temporary trigger tr after insert on t begin delete from q; end; select 1",
                    &[
                        "create temporary trigger tr after insert on t begin delete from q; end",
                        "select 1",
                    ],
                ),
                (
                    "case in trigger body",
                    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = CASE WHEN 1 THEN 2 END; END; SELECT 1",
                    &[
                        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = CASE WHEN 1 THEN 2 END; END",
                        "SELECT 1",
                    ],
                ),
                (
                    "column named end",
                    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET end = 1; END; SELECT 1",
                    &[
                        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET end = 1; END",
                        "SELECT 1",
                    ],
                ),
                (
                    "comment before end",
                    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM q; /* x */ END; SELECT 1",
                    &[
                        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM q; /* x */ END",
                        "SELECT 1",
                    ],
                ),
                (
                    "explain trigger",
                    "EXPLAIN QUERY PLAN CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM q; END; SELECT 1",
                    &[
                        "EXPLAIN QUERY PLAN CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM q; END",
                        "SELECT 1",
                    ],
                ),
                (
                    "trigger without body",
                    "CREATE TRIGGER tr; SELECT 1",
                    &["CREATE TRIGGER tr", "SELECT 1"],
                ),
                (
                    "unclosed trigger body",
                    "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM q; SELECT 1",
                    &["CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM q; SELECT 1"],
                ),
            ],
        )
    }

    #[test]
    fn keyword_cases() -> Result<(), SplitError> {
        let cases: &[(&str, Dialect, &str, &[Option<&str>])] = &[
            (
                "parenthesis and comment",
                Dialect::Postgres,
                "  /* c */ ( select 1)",
                &[Some("SELECT")],
            ),
            (
                "with",
                Dialect::Postgres,
                "with x as (select 1) select * from x",
                &[Some("WITH")],
            ),
            (
                "line comment",
                Dialect::Postgres,
                "-- x\nINSERT INTO t VALUES (1)",
                &[Some("INSERT")],
            ),
            ("number", Dialect::Postgres, "123", &[None]),
            ("string", Dialect::Postgres, "'select'", &[None]),
            ("E-string", Dialect::Postgres, "E'select'", &[None]),
            ("quoted identifier", Dialect::Postgres, "\"select\"", &[None]),
            ("parameter", Dialect::Postgres, "$1", &[None]),
            (
                "nested parentheses",
                Dialect::Postgres,
                "((VALUES (1)))",
                &[Some("VALUES")],
            ),
            ("mixed case", Dialect::Postgres, "UpDaTe t SET a = 1", &[Some("UPDATE")]),
            (
                "word boundary",
                Dialect::Postgres,
                "selected_rows",
                &[Some("SELECTED_ROWS")],
            ),
            ("non-ASCII word", Dialect::Postgres, "東京", &[None]),
            ("underscore word", Dialect::Postgres, "_x", &[None]),
            (
                "each statement",
                Dialect::Postgres,
                "SELECT 1; delete from t",
                &[Some("SELECT"), Some("DELETE")],
            ),
            ("hash comment", Dialect::MySql, "# c\nshow tables", &[Some("SHOW")]),
            (
                "executable comment",
                Dialect::MySql,
                "/*!40101 SET NAMES utf8 */",
                &[None],
            ),
            ("optimizer hint", Dialect::MySql, "/*+ x */ SELECT 1", &[Some("SELECT")]),
            ("bracket identifier", Dialect::Sqlite, "[select]", &[None]),
            ("pragma", Dialect::Sqlite, "PRAGMA table_info(t)", &[Some("PRAGMA")]),
        ];
        for &(name, dialect, sql, expected) in cases {
            let keywords: Vec<Option<String>> = split(sql, dialect)?
                .into_iter()
                .map(|statement| statement.keyword)
                .collect();
            let expected: Vec<Option<String>> = expected.iter().map(|keyword| keyword.map(String::from)).collect();
            assert_eq!(keywords, expected, "{name}");
        }
        Ok(())
    }

    #[test]
    fn offset_cases() -> Result<(), SplitError> {
        let cases: &[(&str, Dialect, &str, &[usize])] = &[
            (
                "leading space",
                Dialect::Postgres,
                "  SELECT 1 ;\n\n  SELECT 2",
                &[2, 16],
            ),
            (
                "leading comment",
                Dialect::Postgres,
                "SELECT 1; /* c */ SELECT 2",
                &[0, 10],
            ),
            ("empty statements", Dialect::MySql, ";; SELECT 1;;SELECT 2", &[3, 13]),
            ("utf8 before", Dialect::Sqlite, "SELECT 'é東';  SELECT 2", &[0, 17]),
        ];
        for &(name, dialect, sql, expected) in cases {
            let statements = split(sql, dialect)?;
            let offsets: Vec<usize> = statements.iter().map(|statement| statement.offset).collect();
            assert_eq!(offsets, expected, "{name}: offsets");
            for statement in &statements {
                let at_offset = sql.get(statement.offset..statement.offset + statement.text.len());
                assert_eq!(
                    at_offset,
                    Some(statement.text),
                    "{name}: text at offset {}",
                    statement.offset
                );
            }
        }
        Ok(())
    }

    #[test]
    fn unterminated_cases() {
        let cases: &[(&str, Dialect, &str, &str, usize)] = &[
            ("string", Dialect::Postgres, "SELECT 'abc", "string", 7),
            (
                "string in second statement",
                Dialect::Postgres,
                "SELECT 1; SELECT 'a;b",
                "string",
                17,
            ),
            (
                "escaped quote in E-string",
                Dialect::Postgres,
                r"SELECT E'abc\'",
                "string",
                7,
            ),
            (
                "backslash at end of E-string",
                Dialect::Postgres,
                "SELECT E'abc\\",
                "string",
                7,
            ),
            (
                "quoted identifier",
                Dialect::Postgres,
                "SELECT \"abc",
                "quoted identifier",
                7,
            ),
            (
                "block comment",
                Dialect::Postgres,
                "SELECT 1 /* abc",
                "block comment",
                9,
            ),
            (
                "nested block comment",
                Dialect::Postgres,
                "SELECT 1 /* a /* b */",
                "block comment",
                9,
            ),
            (
                "dollar quote",
                Dialect::Postgres,
                "SELECT $$abc",
                "dollar-quoted string",
                7,
            ),
            (
                "tagged dollar quote",
                Dialect::Postgres,
                "SELECT $t$abc$$ $u$",
                "dollar-quoted string",
                7,
            ),
            ("escaped quote", Dialect::MySql, r"SELECT 'it\'s", "string", 7),
            ("double-quoted string", Dialect::MySql, "SELECT \"abc", "string", 7),
            (
                "backtick identifier",
                Dialect::MySql,
                "SELECT `abc",
                "quoted identifier",
                7,
            ),
            ("block comment", Dialect::MySql, "SELECT 1; /* abc", "block comment", 10),
            (
                "executable comment",
                Dialect::MySql,
                "/*!40101 SET a = 1",
                "block comment",
                0,
            ),
            ("string", Dialect::Sqlite, "SELECT 'abc''", "string", 7),
            (
                "bracket identifier",
                Dialect::Sqlite,
                "SELECT [abc",
                "quoted identifier",
                7,
            ),
            (
                "backtick identifier",
                Dialect::Sqlite,
                "SELECT `abc",
                "quoted identifier",
                7,
            ),
        ];
        for &(name, dialect, sql, what, offset) in cases {
            assert_eq!(
                split(sql, dialect),
                Err(SplitError::Unterminated { what, offset }),
                "{dialect:?}: {name}"
            );
        }
    }

    #[test]
    fn unterminated_message() {
        let error = SplitError::Unterminated {
            what: "string",
            offset: 7,
        };
        assert_eq!(error.to_string(), "unterminated string starting at byte 7");
    }

    #[test]
    fn utf8_never_split_inside_character() -> Result<(), SplitError> {
        let sql = "SELECT 'héllo; 東京'; SELECT \"名前;\" FROM t; -- ünïcödé;\nSELECT '🦀;'";
        for dialect in ALL_DIALECTS {
            let statements = split(sql, dialect)?;
            let statement_texts: Vec<&str> = statements.iter().map(|statement| statement.text).collect();
            let expected = [
                "SELECT 'héllo; 東京'",
                "SELECT \"名前;\" FROM t",
                "-- ünïcödé;\nSELECT '🦀;'",
            ];
            assert_eq!(statement_texts, expected, "{dialect:?}");
        }
        Ok(())
    }
}
