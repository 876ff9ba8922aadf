//! CSV reading with the semantics of papaparse 5.5 as OIBus calls it
//! (`{header: true, delimiter, skipEmptyLines: true}`, quote `"` escaped by doubling). Written
//! here rather than with the `csv` crate because papaparse's rules differ where it matters for
//! fidelity: any string can be the delimiter, the line break is guessed once for the whole
//! input, a quote is special only at the start of a field, and malformed quoting degrades into
//! text instead of failing. Nothing here panics: every slice is cut at a match of an ASCII
//! quote, the delimiter or the line break, so on a character boundary.

const QUOTE: char = '"';
/// Strings papaparse refuses as a delimiter; it falls back to `,` (and OIBus then reports the
/// mismatch).
const BAD_DELIMITERS: &[&str] = &["\r", "\n", "\"", "\u{feff}"];
/// papaparse guesses the line break from the first MiB.
const GUESS_WINDOW: usize = 1024 * 1024;

/// A parsed file: the delimiter papaparse actually used (`meta.delimiter`) and, per data row,
/// its fields keyed by header in column order. Columns beyond the header are dropped (papaparse
/// puts them under `__parsed_extra`, which nothing reads); missing trailing columns are absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub delimiter: String,
    pub rows: Vec<Vec<(String, String)>>,
}

pub fn parse(input: &str, delimiter: &str) -> Parsed {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    // An empty delimiter makes papaparse guess; the catalogue refuses one before we get here,
    // so the default stands in for the guess.
    let delimiter = if delimiter.is_empty() || BAD_DELIMITERS.contains(&delimiter) {
        ","
    } else {
        delimiter
    };
    let newline = guess_newline(input);
    let mut records = records(input, delimiter, newline);
    // skipEmptyLines: true drops rows made of one empty field, before the header is taken.
    records.retain(|r| !(r.len() == 1 && r[0].is_empty()));
    let mut records = records.into_iter();
    let header = records.next().map(unique_headers).unwrap_or_default();
    let rows = records
        .map(|fields| header.iter().cloned().zip(fields).collect())
        .collect();
    Parsed {
        delimiter: delimiter.to_owned(),
        rows,
    }
}

/// papaparse 5.4+ renames a repeated header `h` to `h_1`, `h_2`, … (and further suffixes while
/// the name is taken).
fn unique_headers(raw: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut counts = std::collections::HashMap::<String, usize>::new();
    raw.into_iter()
        .map(|header| {
            let count = counts.get(&header).copied().unwrap_or(0);
            let mut name = if count > 0 {
                format!("{header}_{count}")
            } else {
                header.clone()
            };
            counts.insert(header, count + 1);
            while seen.contains(&name) {
                name = format!("{name}_{count}");
            }
            seen.insert(name.clone());
            name
        })
        .collect()
}

/// `\r\n`, `\r` or `\n`, chosen as papaparse's `guessLineEndings` does: quoted spans are
/// ignored; `\n` if there is no `\r` or a `\n` comes first; else `\r\n` if at least half of the
/// `\r` pieces start with `\n`.
fn guess_newline(input: &str) -> &'static str {
    let mut end = input.len().min(GUESS_WINDOW);
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    let head = strip_quoted(&input[..end]);
    let r: Vec<&str> = head.split('\r').collect();
    let n_first_len = head.split('\n').next().map_or(0, str::len);
    let n_appears_first = head.contains('\n') && n_first_len < r[0].len();
    if r.len() == 1 || n_appears_first {
        return "\n";
    }
    let with_n = r.iter().filter(|piece| piece.starts_with('\n')).count();
    if with_n * 2 >= r.len() {
        "\r\n"
    } else {
        "\r"
    }
}

/// The text without its `"…"` spans (papaparse's non-greedy `"[^]*?"` replaced by nothing).
fn strip_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find(QUOTE) {
        match rest[open + 1..].find(QUOTE) {
            Some(close) => {
                out.push_str(&rest[..open]);
                rest = &rest[open + 1 + close + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

/// The whitespace-only run between a closing quote and `index`, as papaparse tolerates it.
fn spaces_before(input: &str, after_quote: usize, index: Option<usize>) -> usize {
    match index {
        Some(i) if i > after_quote => {
            let between = &input[after_quote..i];
            if between.chars().all(char::is_whitespace) {
                between.len()
            } else {
                0
            }
        }
        _ => 0,
    }
}

fn find_from(input: &str, from: usize, needle: &str) -> Option<usize> {
    input.get(from..)?.find(needle).map(|i| i + from)
}

fn unescape(field: &str) -> String {
    field.replace("\"\"", "\"")
}

/// All records of `input`, as papaparse's `Parser.parse` cuts them.
fn records(input: &str, delim: &str, newline: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    if input.is_empty() {
        return rows;
    }
    let mut row = Vec::new();
    let mut cursor = 0;
    loop {
        if input[cursor..].starts_with(QUOTE) {
            let start = cursor + 1;
            let mut search = cursor;
            loop {
                let Some(quote) = find_from(input, search + 1, "\"") else {
                    // No closing quote: the rest of the input, as is, is the last field.
                    row.push(input[start..].to_owned());
                    rows.push(row);
                    return rows;
                };
                if quote == input.len() - 1 {
                    row.push(unescape(&input[start..quote]));
                    rows.push(row);
                    return rows;
                }
                if input[quote + 1..].starts_with(QUOTE) {
                    search = quote + 1;
                    continue;
                }
                let after = quote + 1;
                let next_delim = find_from(input, after, delim);
                let next_newline = find_from(input, after, newline);
                // papaparse's `Math.min(nextDelim, nextNewline)` with -1 for "none".
                let check_up_to = match (next_delim, next_newline) {
                    (d, None) => d,
                    (None, Some(_)) => None,
                    (Some(d), Some(n)) => Some(d.min(n)),
                };
                let spaces = spaces_before(input, after, check_up_to);
                if input[after + spaces..].starts_with(delim) {
                    row.push(unescape(&input[start..quote]));
                    cursor = after + spaces + delim.len();
                    break;
                }
                let spaces = spaces_before(input, after, next_newline);
                if input[after + spaces..].starts_with(newline) {
                    row.push(unescape(&input[start..quote]));
                    rows.push(std::mem::take(&mut row));
                    cursor = after + spaces + newline.len();
                    break;
                }
                // A quote inside a quoted field that closes nothing is text (InvalidQuotes).
                search = quote;
            }
            continue;
        }
        let next_delim = find_from(input, cursor, delim);
        let next_newline = find_from(input, cursor, newline);
        match (next_delim, next_newline) {
            (Some(d), n) if n.is_none_or(|n| d < n) => {
                row.push(input[cursor..d].to_owned());
                cursor = d + delim.len();
            }
            (_, Some(n)) => {
                row.push(input[cursor..n].to_owned());
                rows.push(std::mem::take(&mut row));
                cursor = n + newline.len();
            }
            _ => break,
        }
    }
    row.push(input[cursor..].to_owned());
    rows.push(row);
    rows
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rows(p: &Parsed) -> Vec<Vec<(&str, &str)>> {
        p.rows
            .iter()
            .map(|r| r.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
            .collect()
    }

    #[test]
    fn quoted_fields_keep_the_delimiter_line_breaks_and_doubled_quotes() {
        let p = parse(
            "name;settings_nodeId\r\n\"a;b\";\"ns=3;s=\"\"x\"\"\"\r\n\"multi\r\nline\";n\r\n",
            ";",
        );
        assert_eq!(p.delimiter, ";");
        assert_eq!(
            rows(&p),
            vec![
                vec![("name", "a;b"), ("settings_nodeId", "ns=3;s=\"x\"")],
                vec![("name", "multi\r\nline"), ("settings_nodeId", "n")],
            ]
        );
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_text_and_an_unclosed_one_takes_the_rest() {
        let p = parse("a,b\nx\"y,\"open\nz", ",");
        assert_eq!(rows(&p), vec![vec![("a", "x\"y"), ("b", "open\nz")]]);
    }

    #[test]
    fn a_stray_quote_inside_a_quoted_field_is_kept() {
        let p = parse("a,b\n\"x\"y\",2", ",");
        assert_eq!(rows(&p), vec![vec![("a", "x\"y"), ("b", "2")]]);
    }

    #[test]
    fn empty_lines_are_skipped_short_rows_lack_keys_and_extra_fields_are_dropped() {
        let p = parse("\u{feff}a,b\n\n1\n\n1,2,3\n", ",");
        assert_eq!(
            rows(&p),
            vec![vec![("a", "1")], vec![("a", "1"), ("b", "2")]]
        );
    }

    #[test]
    fn repeated_headers_are_renamed_as_papaparse_does() {
        let p = parse("a,a,a\n1,2,3", ",");
        assert_eq!(rows(&p), vec![vec![("a", "1"), ("a_1", "2"), ("a_2", "3")]]);
    }

    #[test]
    fn a_forbidden_delimiter_falls_back_to_a_comma_and_any_string_may_be_one() {
        assert_eq!(parse("a\"b", "\"").delimiter, ",");
        assert_eq!(parse("a", "\n").delimiter, ",");
        let p = parse("a||b\n1||2", "||");
        assert_eq!(p.delimiter, "||");
        assert_eq!(rows(&p), vec![vec![("a", "1"), ("b", "2")]]);
    }

    #[test]
    fn line_breaks_are_guessed_from_the_input() {
        assert_eq!(guess_newline("a\r\nb\r\n"), "\r\n");
        assert_eq!(guess_newline("a\rb\rc"), "\r");
        assert_eq!(guess_newline("a\nb\r"), "\n");
        assert_eq!(guess_newline("\"x\r\"\nb"), "\n");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn hostile_input_never_panics(
            input in "[a-c,;\"\r\n\u{feff} é]{0,64}",
            delimiter in prop::sample::select(vec![",", ";", "\"", "é", ";;", "\r\n", ""]),
        ) {
            let _ = parse(&input, delimiter);
        }

        #[test]
        fn quoted_fields_round_trip(fields in prop::collection::vec("[a-c,;\"\r\n ]{0,8}", 2..5)) {
            let header: Vec<String> = (0..fields.len()).map(|i| format!("h{i}")).collect();
            let line: Vec<String> = fields
                .iter()
                .map(|f| format!("\"{}\"", f.replace('"', "\"\"")))
                .collect();
            let input = format!("{}\r\n{}\r\n", header.join(";"), line.join(";"));
            let p = parse(&input, ";");
            let expected: Vec<(String, String)> =
                header.into_iter().zip(fields.iter().cloned()).collect();
            prop_assert_eq!(p.rows, vec![expected]);
        }
    }
}
