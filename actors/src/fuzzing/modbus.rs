//! Target `modbus`: the modbus south's register decoding and read planning, what turns the
//! server's answers and OIAnalytics's item settings into values. The first byte of an input
//! picks what the rest is:
//!
//! - 0: `[layout flags][data type][bitIndex: i64 LE][multiplier: f64 LE][words: u16 BE...]`
//!   given to `decode` (data types, endianness, swaps of bytes and words, the coefficient);
//! - 1: a JSON array of items (`{modbusType, address, data}`, as OIAnalytics sends them) parsed
//!   with a `modbus` or `jbus` offset, planned with or without batching, and answered by a
//!   server whose answers may be short, long or of the wrong kind;
//! - 2: text given to `parse_address`.
//!
//! Invariants: no panic; a decoded value is never empty and reads back as JavaScript's
//! `Number()` would read it (a finite number, `NaN` or `±Infinity`); an exact integer type
//! decodes to the integer the words hold; `bit` decodes to 0 or 1; every parsed item lies in
//! exactly one request of its type, within the protocol's 125 registers or 2000 bits; an item
//! that is refused names itself; a complete answer gives every item its value, a short one no
//! value rather than a wrong one.

use serde_json::{json, Value};

use crate::connectors::south_modbus::{
    decode, js_number, parse_address, plan, values_of, Answer, DataType, Decoding, Layout, Point,
};
use crate::entities::SouthItem;

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => decode_words(rest),
        1 => items(rest),
        _ => address(&String::from_utf8_lossy(rest)),
    }
}

fn layout_of(flags: u8) -> Layout {
    Layout {
        little_endian: flags & 1 != 0,
        swap_bytes_in_words: flags & 2 != 0,
        swap_words_in_dwords: flags & 4 != 0,
    }
}

fn decode_words(data: &[u8]) {
    if data.len() < 18 {
        return;
    }
    let layout = layout_of(data[0]);
    let data_type = DataType::ALL[usize::from(data[1]) % DataType::ALL.len()];
    let bit_index = i64::from_le_bytes(data[2..10].try_into().expect("8 bytes"));
    let multiplier = f64::from_le_bytes(data[10..18].try_into().expect("8 bytes"));
    let words: Vec<u16> = data[18..]
        .chunks_exact(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]))
        .collect();
    let decoding = Decoding {
        data_type,
        bit_index,
        multiplier,
    };
    let text = decode(&words, layout, decoding);
    assert!(!text.is_empty());
    assert!(
        matches!(text.as_str(), "NaN" | "Infinity" | "-Infinity") || text.parse::<f64>().is_ok(),
        "{text:?} is not a JavaScript number"
    );
    let exact = words.len() >= data_type.words() as usize;
    if exact && multiplier == 1.0 {
        let plain = Layout::default();
        let w = &words;
        match data_type {
            DataType::Bit => assert!(text == "0" || text == "1", "{text}"),
            DataType::UInt16 if layout == plain => assert_eq!(text, w[0].to_string()),
            DataType::Int16 if layout == plain => assert_eq!(text, (w[0] as i16).to_string()),
            // OIBus's default word order: low word first.
            DataType::UInt32 if layout == plain => {
                let n = (u32::from(w[1]) << 16) | u32::from(w[0]);
                assert_eq!(text, n.to_string());
            }
            DataType::Int32 if layout == plain => {
                let n = ((u32::from(w[1]) << 16) | u32::from(w[0])) as i32;
                assert_eq!(text, n.to_string());
            }
            DataType::Float | DataType::Double => {
                // Whatever the layout, the same number as a round trip through its text.
                if let Ok(x) = text.parse::<f64>() {
                    assert_eq!(js_number(x), text);
                }
            }
            _ => {}
        }
    }
}

fn address(text: &str) {
    if let Some(address) = parse_address(text) {
        // What it read is in the text: digits, in decimal or after 0x.
        let digits = address.unsigned_abs().to_string();
        let hex = format!("{:x}", address.unsigned_abs());
        let lower = text.to_ascii_lowercase();
        assert!(
            lower.contains(&digits) || lower.contains(&hex) || address == 0,
            "{text:?} read as {address}"
        );
    }
}

fn item(name: &str, settings: Value) -> Option<SouthItem> {
    serde_json::from_value(json!({
        "id": name, "name": name, "enabled": true, "settings": settings,
        "scanModeId": null, "groupId": null, "other": {},
        "audit": {"createdBy": "", "updatedBy": "", "createdAt": "", "updatedAt": ""}
    }))
    .ok()
}

/// `[flags][gap][answer seed][JSON array of item settings]`.
fn items(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let (flags, gap, seed) = (data[0], u32::from(data[1]), data[2]);
    let Ok(Value::Array(settings)) = serde_json::from_slice::<Value>(&data[3..]) else {
        return;
    };
    let offset = if flags & 1 != 0 { -1 } else { 0 };
    let batch = flags & 2 != 0;
    let layout = layout_of(flags >> 2);
    let mut points = Vec::new();
    for (n, s) in settings.into_iter().take(200).enumerate() {
        let name = format!("item-{n}");
        let Some(item) = item(&name, s) else {
            continue;
        };
        match Point::parse("south 'fuzz'", &item, offset) {
            Ok(point) => {
                assert!(
                    point.end() <= 65536,
                    "{point:?} runs past the address space"
                );
                points.push(point);
            }
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.contains(&format!("'{name}'")),
                    "{text} does not name the item"
                );
            }
        }
    }
    let requests = plan(&points, batch, gap);
    let mut seen = vec![0u32; points.len()];
    for request in &requests {
        assert!(
            u32::from(request.count) <= request.kind.max_count(),
            "{request:?}"
        );
        assert!(request.end() <= 65536, "{request:?}");
        for &i in &request.points {
            seen[i] += 1;
            assert_eq!(points[i].modbus_type, request.kind);
            assert!(points[i].address >= request.start && points[i].end() <= request.end());
        }
        // The server answers: complete, short by `cut`, or with extra values; or the other kind.
        let count = usize::from(request.count);
        let cut = usize::from(seed % 4);
        let length = match seed % 3 {
            0 => count,
            1 => count.saturating_sub(cut),
            _ => count + cut,
        };
        let word = |k: usize| (k as u16).wrapping_mul(0x9E37) ^ u16::from(seed);
        let answer = if request.kind.is_bits() == (seed % 5 != 4) {
            Answer::Bits((0..length).map(|k| word(k) & 1 == 1).collect())
        } else {
            Answer::Words((0..length).map(word).collect())
        };
        let values = values_of(&points, request, &answer, layout);
        assert_eq!(values.len(), request.points.len());
        let right_kind = matches!(
            (&answer, request.kind.is_bits()),
            (Answer::Bits(_), true) | (Answer::Words(_), false)
        );
        for (i, value) in values {
            let p = &points[i];
            let fits = (p.end() - u32::from(request.start)) as usize <= length;
            assert_eq!(value.is_some(), right_kind && fits, "{p:?} in {answer:?}");
            if let Some(text) = value {
                assert!(!text.is_empty());
            }
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "points read {seen:?} times");
}
