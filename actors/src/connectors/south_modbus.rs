//! South modbus (OIBus `south-modbus.ts`, `utils-modbus.ts`): holding and input registers,
//! coils and discrete inputs of one Modbus TCP server, every due item of a scan mode in one read.
//!
//! One TCP connection per south, shared by the reads and opened at the first one. A transport
//! error or a timeout drops it; the next read connects again, and failed connections wait the
//! agent's backoff (capped at `retryInterval`), so a read in the meantime fails at once with the
//! last reason. A Modbus exception keeps the connection and names the items and address.
//!
//! With `batchQuery` (the default when absent, as OIBus intends for connectors created before
//! the setting existed) items of one type whose addresses are at most `groupingGap` apart are
//! read in one request of at most 125 registers or 2000 bits; otherwise one request per item.
//! Values are decoded as OIBus does (see [`decode`]) and sent as strings, as OIBus sends them.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_modbus::client::{tcp, Context, Reader};
use tokio_modbus::{ExceptionCode, Slave};

use super::{ConnectorError, SettingsReader};
use crate::backoff::{Backoff, FIRST_RETRY};
use crate::content::TimeValue;
use crate::entities::SouthItem;

/// Modbus Application Protocol limits of one read (FC01/FC02 bits, FC03/FC04 words).
const MAX_BITS: u32 = 2000;
const MAX_WORDS: u32 = 125;

/// Why a read or a test failed: what, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ModbusError {
    #[error("{connector}: item '{item}': {problem}; correct the item in OIAnalytics")]
    Item {
        connector: String,
        item: String,
        problem: String,
    },

    #[error("{connector}: the server answered {exception} to reading {kind} {start}..{end} (items {items}); check the items' addresses and types")]
    Exception {
        connector: String,
        kind: &'static str,
        start: u16,
        /// Exclusive.
        end: u32,
        items: String,
        exception: ExceptionCode,
    },

    /// Without the delay to the next attempt, so the same outage gives the same text (the south
    /// logs a repeated error once).
    #[error("{connector}: cannot connect to {address}: {reason}; the agent retries by itself")]
    Connect {
        connector: String,
        address: String,
        reason: String,
    },

    #[error("{connector}: {what} at {address} failed: {reason}; reconnecting")]
    Transport {
        connector: String,
        address: String,
        /// `reading holding-register 0..4`, `writing register 40`.
        what: String,
        reason: String,
    },

    /// `test-south-connection`, with OIBus's texts.
    #[error("{0}")]
    Test(String),
}

/// `modbusType` of an item: the function code it is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModbusType {
    Coil,
    DiscreteInput,
    InputRegister,
    HoldingRegister,
}

impl ModbusType {
    fn parse(text: &str) -> Option<ModbusType> {
        Some(match text {
            "coil" => ModbusType::Coil,
            "discrete-input" => ModbusType::DiscreteInput,
            "input-register" => ModbusType::InputRegister,
            "holding-register" => ModbusType::HoldingRegister,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ModbusType::Coil => "coil",
            ModbusType::DiscreteInput => "discrete-input",
            ModbusType::InputRegister => "input-register",
            ModbusType::HoldingRegister => "holding-register",
        }
    }

    pub fn is_bits(self) -> bool {
        matches!(self, ModbusType::Coil | ModbusType::DiscreteInput)
    }

    pub fn max_count(self) -> u32 {
        if self.is_bits() {
            MAX_BITS
        } else {
            MAX_WORDS
        }
    }
}

/// `data.dataType` of a register item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Bit,
    UInt16,
    Int16,
    UInt32,
    Int32,
    Float,
    BigUInt64,
    BigInt64,
    Double,
}

impl DataType {
    pub const ALL: [DataType; 9] = [
        DataType::Bit,
        DataType::UInt16,
        DataType::Int16,
        DataType::UInt32,
        DataType::Int32,
        DataType::Float,
        DataType::BigUInt64,
        DataType::BigInt64,
        DataType::Double,
    ];

    fn parse(text: &str) -> Option<DataType> {
        Some(match text {
            "bit" => DataType::Bit,
            "uint16" => DataType::UInt16,
            "int16" => DataType::Int16,
            "uint32" => DataType::UInt32,
            "int32" => DataType::Int32,
            "float" => DataType::Float,
            "big-uint64" => DataType::BigUInt64,
            "big-int64" => DataType::BigInt64,
            "double" => DataType::Double,
            _ => return None,
        })
    }

    /// Registers the type spans.
    pub fn words(self) -> u32 {
        match self {
            DataType::Bit | DataType::UInt16 | DataType::Int16 => 1,
            DataType::UInt32 | DataType::Int32 | DataType::Float => 2,
            DataType::BigUInt64 | DataType::BigInt64 | DataType::Double => 4,
        }
    }
}

/// How registers become a number: the connector's `endianness`, `swapBytesInWords` and
/// `swapWordsInDWords`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    pub little_endian: bool,
    pub swap_bytes_in_words: bool,
    pub swap_words_in_dwords: bool,
}

/// How one register item is decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoding {
    pub data_type: DataType,
    pub bit_index: i64,
    pub multiplier: f64,
}

/// The value OIBus sends for `words` (exactly `data_type.words()` of them, as received: each
/// word's high byte first) of a register item.
///
/// OIBus lays the words out as bytes, high byte first, then for 32- and 64-bit types swaps the
/// two words of each 32-bit half (so the default order is low word first, and a 64-bit value's
/// halves stay in place), unless `swapWordsInDWords` undoes it; `swapBytesInWords` then swaps
/// the bytes of each word, and the buffer is read big- or little-endian. The number is multiplied
/// by the coefficient as a float (64-bit integers lose precision as in OIBus), `bit` is bit
/// `bitIndex` of the 16-bit value, and the text is JavaScript's.
pub fn decode(words: &[u16], layout: Layout, decoding: Decoding) -> String {
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    if decoding.data_type.words() > 1 && !layout.swap_words_in_dwords {
        for dword in bytes.chunks_exact_mut(4) {
            dword.rotate_left(2);
        }
    }
    if layout.swap_bytes_in_words {
        for word in bytes.chunks_exact_mut(2) {
            word.swap(0, 1);
        }
    }
    fn take<const N: usize>(bytes: &[u8], little_endian: bool) -> [u8; N] {
        let mut out = [0; N];
        let n = N.min(bytes.len());
        out[..n].copy_from_slice(&bytes[..n]);
        if little_endian {
            out.reverse();
        }
        out
    }
    let le = layout.little_endian;
    let number = match decoding.data_type {
        DataType::UInt16 => u16::from_be_bytes(take(&bytes, le)) as f64,
        DataType::Int16 => i16::from_be_bytes(take(&bytes, le)) as f64,
        DataType::UInt32 => u32::from_be_bytes(take(&bytes, le)) as f64,
        DataType::Int32 => i32::from_be_bytes(take(&bytes, le)) as f64,
        DataType::Float => f32::from_be_bytes(take(&bytes, le)) as f64,
        DataType::BigUInt64 => u64::from_be_bytes(take(&bytes, le)) as f64,
        DataType::BigInt64 => i64::from_be_bytes(take(&bytes, le)) as f64,
        DataType::Double => f64::from_be_bytes(take(&bytes, le)),
        DataType::Bit => {
            let word = u16::from_be_bytes(take(&bytes, le)) as u32;
            // JavaScript's `>>` takes the shift count modulo 32.
            ((word >> (decoding.bit_index as u32 & 31)) & 1) as f64
        }
    };
    js_number(number * decoding.multiplier)
}

/// `Number.prototype.toString()`: the shortest digits that round-trip, in JavaScript's layout
/// (exponent form below 1e-6 and from 1e21).
pub fn js_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` is also the shortest round-trip form: `d[.ddd]e<exp>`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i64;
    let n = exp.parse::<i64>().unwrap_or(0) + 1;
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        let _ = write!(out, "{int}.{frac}");
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            let _ = write!(out, ".{rest}");
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    out
}

/// An item's `address` as OIBus reads it: `0x` hexadecimal, else JavaScript's `parseInt(_, 10)`
/// (leading blanks, a sign, then the leading digits: `"12abc"` is 12). `None` without digits.
pub fn parse_address(text: &str) -> Option<i64> {
    let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if is_hex(hex) {
            return i64::from_str_radix(hex, 16).ok();
        }
    }
    let rest = text.trim_start();
    let (negative, rest) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let end = rest
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    let value: i64 = rest[..end].parse().ok()?;
    Some(if negative { -value } else { value })
}

/// One item ready to read: where, and how to decode it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub modbus_type: ModbusType,
    pub address: u16,
    /// `None` for coils and discrete inputs.
    pub decoding: Option<Decoding>,
}

impl Point {
    /// `item`'s settings (`modbusType`, `address`, `data`), the address moved by `offset`
    /// (`jbus` addresses start at 1).
    pub fn parse(connector: &str, item: &SouthItem, offset: i64) -> Result<Point, ModbusError> {
        let wrong = |problem: String| ModbusError::Item {
            connector: connector.to_owned(),
            item: item.name.clone(),
            problem,
        };
        let settings = &item.settings;
        let type_text = settings["modbusType"].as_str().unwrap_or_default();
        let modbus_type = ModbusType::parse(type_text).ok_or_else(|| {
            wrong(format!("settings.modbusType {type_text:?} is not coil, discrete-input, input-register or holding-register"))
        })?;
        let address_text = settings["address"].as_str().unwrap_or_default();
        let address = parse_address(address_text).ok_or_else(|| {
            wrong(format!(
                "settings.address {address_text:?} is not a decimal or 0x-hexadecimal address"
            ))
        })?;
        let address = u16::try_from(address + offset).map_err(|_| {
            wrong(format!(
                "settings.address {address_text:?} is outside the Modbus range 0..=65535 (offset {offset})"
            ))
        })?;
        let decoding = if modbus_type.is_bits() {
            None
        } else {
            let data = &settings["data"];
            let type_text = data["dataType"].as_str().unwrap_or("uint16");
            let data_type = DataType::parse(type_text).ok_or_else(|| {
                wrong(format!(
                    "settings.data.dataType {type_text:?} is not a Modbus data type"
                ))
            })?;
            if u32::from(address) + data_type.words() > 65536 {
                return Err(wrong(format!(
                    "settings.address {address_text:?} leaves no room for the {} registers of {type_text}",
                    data_type.words()
                )));
            }
            Some(Decoding {
                data_type,
                bit_index: data["bitIndex"].as_f64().map(|f| f as i64).unwrap_or(0),
                multiplier: data["multiplierCoefficient"].as_f64().unwrap_or(1.0),
            })
        };
        Ok(Point {
            name: item.name.clone(),
            modbus_type,
            address,
            decoding,
        })
    }

    /// Registers or bits the point spans.
    pub fn width(&self) -> u32 {
        self.decoding.map_or(1, |d| d.data_type.words())
    }

    pub fn end(&self) -> u32 {
        u32::from(self.address) + self.width()
    }
}

/// One request of a read: `count` registers or bits of `kind` from `start`, and the points it
/// answers (indices into the points given to [`plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: ModbusType,
    pub start: u16,
    pub count: u16,
    pub points: Vec<usize>,
}

impl Request {
    /// Exclusive.
    pub fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }

    fn describe(&self) -> String {
        format!(
            "reading {} {}..{}",
            self.kind.as_str(),
            self.start,
            self.end()
        )
    }
}

/// The requests reading `points`: with `batch`, per type by address, points at most `gap`
/// registers or bits after the previous one's end share a request of at most 125 registers or
/// 2000 bits (gap fillers are read and dropped); without, one request per point. Requests come
/// per type in order of first appearance, by address.
pub fn plan(points: &[Point], batch: bool, gap: u32) -> Vec<Request> {
    let single = |i: usize| Request {
        kind: points[i].modbus_type,
        start: points[i].address,
        count: points[i].width() as u16,
        points: vec![i],
    };
    if !batch {
        return (0..points.len()).map(single).collect();
    }
    let mut kinds: Vec<ModbusType> = Vec::new();
    for p in points {
        if !kinds.contains(&p.modbus_type) {
            kinds.push(p.modbus_type);
        }
    }
    let mut requests = Vec::new();
    for kind in kinds {
        let mut group: Vec<usize> = (0..points.len())
            .filter(|&i| points[i].modbus_type == kind)
            .collect();
        group.sort_by_key(|&i| points[i].address);
        let mut current: Option<(Request, u32)> = None;
        for i in group {
            let p = &points[i];
            if let Some((request, end)) = &mut current {
                let new_end = (*end).max(p.end());
                let joins = u32::from(p.address) <= *end + gap
                    && new_end - u32::from(request.start) <= kind.max_count();
                if joins {
                    *end = new_end;
                    request.count = (new_end - u32::from(request.start)) as u16;
                    request.points.push(i);
                    continue;
                }
            }
            requests.extend(current.take().map(|(r, _)| r));
            current = Some((single(i), p.end()));
        }
        requests.extend(current.map(|(r, _)| r));
    }
    requests
}

/// The connection, shared by the reads of one south or the writes of one north.
pub(crate) struct Link {
    context: Option<Context>,
    backoff: Backoff,
    /// After a failed connection: no new attempt before this, and why it failed.
    retry_at: Option<(Instant, String)>,
}

/// Where a Modbus connector connects (`host`, `port`, `slaveId`, `connectTimeout`,
/// `networkTimeout`, `retryInterval`, `addressOffset`), and its one connection: opened on first
/// use, dropped on a transport error, opened again after the agent's backoff.
pub(crate) struct Endpoint {
    pub(crate) label: String,
    host: String,
    port: u16,
    slave: u8,
    connect_timeout: Duration,
    pub(crate) network_timeout: Duration,
    /// Added to every address: −1 with `jbus` (addresses from 1).
    pub(crate) offset: i64,
    link: Mutex<Link>,
}

impl Endpoint {
    pub(crate) fn new(
        label: &str,
        reader: &SettingsReader<'_>,
    ) -> Result<Endpoint, ConnectorError> {
        let bounded = |key: &str, default: u64, min: u64, max: u64| {
            let value = reader.u64_or(key, default)?;
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(ConnectorError::settings(
                    label,
                    key,
                    format!("must be between {min} and {max}"),
                ))
            }
        };
        let ms =
            |key: &str, default: u64| bounded(key, default, 1, 600_000).map(Duration::from_millis);
        let offset = match reader.string_or("addressOffset", "modbus")?.as_str() {
            "modbus" => 0,
            "jbus" => -1,
            _ => {
                return Err(ConnectorError::settings(
                    label,
                    "addressOffset",
                    "must be modbus or jbus",
                ))
            }
        };
        Ok(Endpoint {
            label: label.to_owned(),
            host: reader.required_string("host")?,
            port: bounded("port", 502, 1, 65535)? as u16,
            slave: bounded("slaveId", 1, 0, 255)? as u8,
            connect_timeout: ms("connectTimeout", 10_000)?,
            network_timeout: ms("networkTimeout", 15_000)?,
            offset,
            link: Mutex::new(Link {
                context: None,
                backoff: Backoff::new(FIRST_RETRY, ms("retryInterval", 10_000)?),
                retry_at: None,
            }),
        })
    }

    pub(crate) fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The connection, held until the guard drops: requests of one read or write go in turn.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, Link> {
        self.link.lock().await
    }

    /// The open connection, or a new one; fails at once while a failed one's backoff runs.
    pub(crate) async fn connected<'l>(
        &self,
        link: &'l mut Link,
    ) -> Result<&'l mut Context, ModbusError> {
        if link.context.is_none() {
            if let Some((at, reason)) = &link.retry_at {
                if *at > Instant::now() {
                    return Err(self.connect_error(reason.clone()));
                }
            }
            match self.open().await {
                Ok(stream) => {
                    link.backoff.reset();
                    link.retry_at = None;
                    link.context = Some(tcp::attach_slave(stream, Slave(self.slave)));
                    tracing::info!(connector = %self.label, address = %self.address(), "modbus connected");
                }
                Err(reason) => {
                    let delay = link.backoff.on_failure();
                    link.retry_at = Some((Instant::now() + delay, reason.clone()));
                    return Err(self.connect_error(reason));
                }
            }
        }
        link.context
            .as_mut()
            .ok_or_else(|| self.connect_error("not connected".into()))
    }

    /// `asked` (one request on the connection) within `networkTimeout`: the answer (an
    /// exception is the inner error), or why the transport failed (then call [`Self::lost`]).
    pub(crate) async fn within<T>(
        &self,
        asked: impl std::future::Future<Output = tokio_modbus::Result<T>>,
    ) -> Result<Result<T, ExceptionCode>, String> {
        match tokio::time::timeout(self.network_timeout, asked).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "no answer within networkTimeout {} ms",
                self.network_timeout.as_millis()
            )),
        }
    }

    /// The transport failed while `what`: the connection is dropped, to be opened again.
    pub(crate) fn lost(&self, link: &mut Link, what: String, reason: String) -> ModbusError {
        link.context = None;
        ModbusError::Transport {
            connector: self.label.clone(),
            address: self.address(),
            what,
            reason,
        }
    }

    fn connect_error(&self, reason: String) -> ModbusError {
        ModbusError::Connect {
            connector: self.label.clone(),
            address: self.address(),
            reason,
        }
    }

    async fn open(&self) -> Result<TcpStream, String> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => {
                // Registers are small and latency matters more than packing.
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "Modbus connection timeout after {} ms",
                self.connect_timeout.as_millis()
            )),
        }
    }

    /// `test-*-connection`: a fresh connection, answered as OIBus's
    /// `{items:[{key:"RemoteAddress", value:"<ip>:<port>"}]}`, with OIBus's error texts.
    pub(crate) async fn test_connection(&self) -> Result<Value, ModbusError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) || e.to_string().contains("lookup") =>
            {
                return Err(ModbusError::Test(format!(
                    "Please check host and port: {e}"
                )))
            }
            Ok(Err(e)) => {
                return Err(ModbusError::Test(format!(
                    "Unable to connect to socket: {e}"
                )))
            }
            Err(_) => {
                return Err(ModbusError::Test(format!(
                    "Unable to connect to socket: Modbus connection timeout after {} ms",
                    self.connect_timeout.as_millis()
                )))
            }
        };
        let peer = stream
            .peer_addr()
            .map(|a| format!("{}:{}", a.ip(), a.port()))
            .unwrap_or_else(|_| self.address());
        Ok(json!({"items": [{"key": "RemoteAddress", "value": peer}]}))
    }
}

pub struct ModbusSouth {
    endpoint: Endpoint,
    layout: Layout,
    batch: bool,
    gap: u32,
}

impl ModbusSouth {
    /// `settings` as OIBus's manifest: the [`Endpoint`]'s, `endianness`, `swapBytesInWords`,
    /// `swapWordsInDWords`, `batchQuery`, `groupingGap`.
    pub fn new(south_id: &str, settings: &Value) -> Result<ModbusSouth, ConnectorError> {
        let label = format!("south '{south_id}'");
        let reader = SettingsReader::new(&label, settings);
        let gap = reader.u64_or("groupingGap", 0)?;
        if gap > u64::from(MAX_BITS) {
            return Err(ConnectorError::settings(
                &label,
                "groupingGap",
                format!("must be between 0 and {MAX_BITS}"),
            ));
        }
        let little_endian = match reader.string_or("endianness", "big-endian")?.as_str() {
            "big-endian" => false,
            "little-endian" => true,
            _ => {
                return Err(ConnectorError::settings(
                    &label,
                    "endianness",
                    "must be big-endian or little-endian",
                ))
            }
        };
        Ok(ModbusSouth {
            layout: Layout {
                little_endian,
                swap_bytes_in_words: reader.bool_or("swapBytesInWords", false)?,
                swap_words_in_dwords: reader.bool_or("swapWordsInDWords", false)?,
            },
            batch: reader.bool_or("batchQuery", true)?,
            gap: gap as u32,
            endpoint: Endpoint::new(&label, &reader)?,
        })
    }

    /// The values of `items`, all stamped with the time the read started. A malformed item or
    /// a Modbus exception costs only the items concerned (each named in `errors`); the other
    /// requests are still read. A lost connection fails the read whole: the next requests would
    /// fail the same.
    pub async fn read(&self, items: &[&SouthItem]) -> Result<ModbusRead, ModbusError> {
        let timestamp = crate::protocol::iso_now();
        let label = &self.endpoint.label;
        let mut errors = Vec::new();
        let mut points = Vec::with_capacity(items.len());
        for item in items {
            match Point::parse(label, item, self.endpoint.offset) {
                Ok(point) => points.push(point),
                Err(e) => errors.push(e),
            }
        }
        let mut values: Vec<Option<String>> = vec![None; points.len()];
        let requests = plan(&points, self.batch, self.gap);
        let mut answered = vec![false; requests.len()];
        if !requests.is_empty() {
            let mut link = self.endpoint.lock().await;
            for (r, request) in requests.iter().enumerate() {
                match self.request(&mut link, request).await? {
                    Ok(answer) => {
                        answered[r] = true;
                        for (i, value) in values_of(&points, request, &answer, self.layout) {
                            values[i] = value;
                        }
                    }
                    Err(exception) => errors.push(ModbusError::Exception {
                        connector: label.clone(),
                        kind: request.kind.as_str(),
                        start: request.start,
                        end: request.end(),
                        items: request
                            .points
                            .iter()
                            .map(|&i| format!("'{}'", points[i].name))
                            .collect::<Vec<_>>()
                            .join(", "),
                        exception,
                    }),
                }
            }
        }
        let mut out = Vec::with_capacity(points.len());
        for (request, _) in requests.iter().zip(&answered).filter(|(_, &a)| a) {
            for &i in &request.points {
                let value = values[i].take().ok_or_else(|| ModbusError::Transport {
                    connector: label.clone(),
                    address: self.endpoint.address(),
                    what: request.describe(),
                    reason: "the answer was shorter than asked".into(),
                })?;
                out.push(TimeValue {
                    point_id: points[i].name.clone(),
                    timestamp: timestamp.clone(),
                    data: json!({ "value": value }),
                });
            }
        }
        Ok(ModbusRead {
            values: out,
            errors,
        })
    }

    async fn request(
        &self,
        link: &mut Link,
        request: &Request,
    ) -> Result<Result<Answer, ExceptionCode>, ModbusError> {
        let context = self.endpoint.connected(link).await?;
        let (start, count) = (request.start, request.count);
        let asked = async {
            Ok(match request.kind {
                ModbusType::Coil => context.read_coils(start, count).await?.map(Answer::Bits),
                ModbusType::DiscreteInput => context
                    .read_discrete_inputs(start, count)
                    .await?
                    .map(Answer::Bits),
                ModbusType::InputRegister => context
                    .read_input_registers(start, count)
                    .await?
                    .map(Answer::Words),
                ModbusType::HoldingRegister => context
                    .read_holding_registers(start, count)
                    .await?
                    .map(Answer::Words),
            })
        };
        let answer = self.endpoint.within(asked).await;
        answer.map_err(|reason| self.endpoint.lost(link, request.describe(), reason))
    }

    /// `test-south-connection`.
    pub async fn test_connection(&self) -> Result<Value, ModbusError> {
        self.endpoint.test_connection().await
    }

    /// `test-south-item` (OIBus `testItem`) on this driver's own connection: the values of
    /// `item`, the milliseconds the connection took and those the read took.
    pub async fn test_item(
        &self,
        item: &SouthItem,
    ) -> Result<(Vec<TimeValue>, u64, u64), ModbusError> {
        let started = Instant::now();
        {
            let mut link = self.endpoint.lock().await;
            self.endpoint.connected(&mut link).await?;
        }
        let connected = started.elapsed().as_millis() as u64;
        let started = Instant::now();
        let read = self.read(&[item]).await?;
        if let Some(error) = read.errors.into_iter().next() {
            return Err(error);
        }
        Ok((read.values, connected, started.elapsed().as_millis() as u64))
    }
}

/// What the server answered to one [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Bits(Vec<bool>),
    Words(Vec<u16>),
}

/// What one read gave: the values of the items that could be read, and why the others could
/// not (a malformed item, an exception of the server), each naming its items.
#[derive(Debug, Default)]
pub struct ModbusRead {
    pub values: Vec<TimeValue>,
    pub errors: Vec<ModbusError>,
}

/// The value of each point of `request` in `answer` (by index into `points`): `None` where the
/// answer is shorter than asked or of the other kind (bits for registers).
pub fn values_of(
    points: &[Point],
    request: &Request,
    answer: &Answer,
    layout: Layout,
) -> Vec<(usize, Option<String>)> {
    request
        .points
        .iter()
        .map(|&i| {
            let p = &points[i];
            let at = usize::from(p.address.saturating_sub(request.start));
            let value = match answer {
                Answer::Bits(bits) if p.decoding.is_none() => {
                    bits.get(at).map(|&b| u8::from(b).to_string())
                }
                Answer::Words(words) => words
                    .get(at..at + p.width() as usize)
                    .zip(p.decoding)
                    .map(|(words, decoding)| decode(words, layout, decoding)),
                Answer::Bits(_) => None,
            };
            (i, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PLAIN: Layout = Layout {
        little_endian: false,
        swap_bytes_in_words: false,
        swap_words_in_dwords: false,
    };

    fn dec(data_type: DataType) -> Decoding {
        Decoding {
            data_type,
            bit_index: 0,
            multiplier: 1.0,
        }
    }

    #[test]
    fn numbers_print_as_javascript_does() {
        for (x, text) in [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-12.5, "-12.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123456789012.0, "123456789012"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (1e-7, "1e-7"),
            (1.25e-7, "1.25e-7"),
            (0.000001, "0.000001"),
            (0.00012, "0.00012"),
            (18446744073709551615.0, "18446744073709552000"),
            (3.140000104904175, "3.140000104904175"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ] {
            assert_eq!(js_number(x), text, "{x}");
        }
    }

    #[test]
    fn addresses_are_hex_with_0x_else_leading_decimal_digits() {
        for (text, address) in [
            ("0x0001", Some(1)),
            ("0XfF", Some(255)),
            ("40001", Some(40001)),
            ("  12", Some(12)),
            ("12abc", Some(12)),
            ("-3", Some(-3)),
            ("0x", Some(0)),
            ("0xZZ", Some(0)),
            ("", None),
            ("abc", None),
            ("x12", None),
        ] {
            assert_eq!(parse_address(text), address, "{text:?}");
        }
    }

    fn item(name: &str, settings: Value) -> SouthItem {
        serde_json::from_value(json!({
            "id": name, "name": name, "enabled": true, "settings": settings,
            "scanModeId": null, "groupId": null, "other": {},
            "audit": {"createdBy": "", "updatedBy": "", "createdAt": "", "updatedAt": ""}
        }))
        .unwrap_or_else(|e| panic!("a test item: {e}"))
    }

    #[test]
    fn an_item_address_moves_down_one_with_jbus_and_bad_ones_name_the_item() {
        let it = item(
            "level",
            json!({"modbusType": "holding-register", "address": "0x10",
                   "data": {"dataType": "float", "bitIndex": 0, "multiplierCoefficient": 2}}),
        );
        let p = Point::parse("south 's'", &it, -1).unwrap();
        assert_eq!(p.address, 15);
        assert_eq!(p.decoding.map(|d| d.multiplier), Some(2.0));
        let bad = item("pump", json!({"modbusType": "coil", "address": "pump-1"}));
        let err = Point::parse("south 's'", &bad, 0).unwrap_err().to_string();
        assert!(
            err.contains("item 'pump'") && err.contains("\"pump-1\""),
            "{err}"
        );
        let zero = item("z", json!({"modbusType": "coil", "address": "0"}));
        let err = Point::parse("south 's'", &zero, -1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("item 'z'") && err.contains("outside"), "{err}");
        let wide = item(
            "w",
            json!({"modbusType": "input-register", "address": "65534", "data": {"dataType": "double"}}),
        );
        assert!(Point::parse("south 's'", &wide, 0).is_err());
        let kind = item("k", json!({"modbusType": "register", "address": "1"}));
        let err = Point::parse("south 's'", &kind, 0).unwrap_err().to_string();
        assert!(err.contains("modbusType"), "{err}");
    }

    #[test]
    fn registers_decode_as_oibus_buffer_swaps_do() {
        // OIBus's default order for 32 bits is low word first.
        assert_eq!(
            decode(&[0x0001, 0x0002], PLAIN, dec(DataType::UInt32)),
            "131073"
        );
        let swapped = Layout {
            swap_words_in_dwords: true,
            ..PLAIN
        };
        assert_eq!(
            decode(&[0x0001, 0x0002], swapped, dec(DataType::UInt32)),
            "65538"
        );
        let little = Layout {
            little_endian: true,
            ..PLAIN
        };
        // [00 02 00 01] read little-endian.
        assert_eq!(
            decode(&[0x0001, 0x0002], little, dec(DataType::UInt32)),
            "16777728"
        );
        assert_eq!(decode(&[0x0102], little, dec(DataType::UInt16)), "513");
        let bytes = Layout {
            swap_bytes_in_words: true,
            ..PLAIN
        };
        assert_eq!(decode(&[0x0102], bytes, dec(DataType::UInt16)), "513");
        assert_eq!(decode(&[0xFFFE], PLAIN, dec(DataType::Int16)), "-2");
        assert_eq!(decode(&[0xFFFF, 0xFFFF], PLAIN, dec(DataType::Int32)), "-1");
        // 1.5f32 = 0x3FC00000, low word first by default.
        assert_eq!(
            decode(&[0x0000, 0x3FC0], PLAIN, dec(DataType::Float)),
            "1.5"
        );
        assert_eq!(
            decode(&[0x3FC0, 0x0000], swapped, dec(DataType::Float)),
            "1.5"
        );
        // 64 bits: the words of each 32-bit half swap, the halves stay.
        let double = 2.5f64.to_bits();
        let w = |i: u32| (double >> (48 - 16 * i)) as u16;
        assert_eq!(
            decode(&[w(1), w(0), w(3), w(2)], PLAIN, dec(DataType::Double)),
            "2.5"
        );
        assert_eq!(
            decode(&[w(0), w(1), w(2), w(3)], swapped, dec(DataType::Double)),
            "2.5"
        );
        assert_eq!(
            decode(
                &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF],
                PLAIN,
                dec(DataType::BigInt64)
            ),
            "-1"
        );
        assert_eq!(
            decode(&[0, 0x0010, 0, 0], PLAIN, dec(DataType::BigUInt64)),
            "4503599627370496"
        );
        let scaled = Decoding {
            multiplier: 0.1,
            ..dec(DataType::UInt16)
        };
        assert_eq!(decode(&[123], PLAIN, scaled), "12.3");
    }

    #[test]
    fn bit_is_the_indexed_bit_of_the_word_with_javascript_shift() {
        let bit = |bit_index| Decoding {
            bit_index,
            ..dec(DataType::Bit)
        };
        assert_eq!(decode(&[0b0100], PLAIN, bit(2)), "1");
        assert_eq!(decode(&[0b0100], PLAIN, bit(1)), "0");
        assert_eq!(decode(&[0x8000], PLAIN, bit(15)), "1");
        assert_eq!(decode(&[0x8000], PLAIN, bit(16)), "0");
        assert_eq!(decode(&[0x0001], PLAIN, bit(32)), "1");
    }

    fn point(name: &str, kind: ModbusType, address: u16, data_type: DataType) -> Point {
        Point {
            name: name.into(),
            modbus_type: kind,
            address,
            decoding: (!kind.is_bits()).then(|| dec(data_type)),
        }
    }

    #[test]
    fn near_items_of_one_type_share_a_request_within_the_protocol_limits() {
        use DataType::*;
        use ModbusType::*;
        let points = vec![
            point("a", HoldingRegister, 10, Float),
            point("c", Coil, 5, Bit),
            point("b", HoldingRegister, 12, UInt16),
            point("d", Coil, 6, Bit),
            point("e", HoldingRegister, 15, Double),
            point("f", Coil, 2100, Bit),
            point("g", InputRegister, 0, UInt16),
        ];
        let got = plan(&points, true, 0);
        let summary: Vec<_> = got
            .iter()
            .map(|r| (r.kind, r.start, r.count, r.points.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (HoldingRegister, 10, 3, vec![0, 2]),
                (HoldingRegister, 15, 4, vec![4]),
                (Coil, 5, 2, vec![1, 3]),
                (Coil, 2100, 1, vec![5]),
                (InputRegister, 0, 1, vec![6]),
            ]
        );
        // A wide gap joins 10..13 and 15..19; 2000 bits cap the coil request.
        let got = plan(&points, true, 2100);
        assert_eq!((got[0].start, got[0].count), (10, 9));
        assert_eq!(got[1].points, vec![1, 3]);
        assert_eq!(got[2].points, vec![5]);
        assert_eq!(plan(&points, false, 0).len(), points.len());
        // An overlapping wider item keeps the request long enough for it.
        let overlap = vec![
            point("x", HoldingRegister, 0, Double),
            point("y", HoldingRegister, 1, UInt16),
        ];
        assert_eq!(plan(&overlap, true, 0)[0].count, 4);
    }

    proptest! {
        #[test]
        fn any_words_and_type_decode_without_panic(
            words in proptest::collection::vec(any::<u16>(), 0..6),
            kind in 0usize..9,
            bit_index in any::<i64>(),
            multiplier in any::<f64>(),
            little_endian in any::<bool>(),
            swap_bytes_in_words in any::<bool>(),
            swap_words_in_dwords in any::<bool>(),
        ) {
            let layout = Layout { little_endian, swap_bytes_in_words, swap_words_in_dwords };
            let decoding = Decoding { data_type: DataType::ALL[kind], bit_index, multiplier };
            let text = decode(&words, layout, decoding);
            prop_assert!(!text.is_empty());
        }

        #[test]
        fn js_number_round_trips(x in any::<f64>().prop_filter("finite", |x| x.is_finite())) {
            let text = js_number(x);
            let back: f64 = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert!(back == x || (x == 0.0 && back == 0.0), "{} -> {}", x, text);
        }

        #[test]
        fn every_planned_point_lies_inside_one_request_within_limits(
            specs in proptest::collection::vec((0usize..4, 0u16..300, 0usize..9), 1..40),
            batch in any::<bool>(),
            gap in 0u32..10,
        ) {
            let kinds = [ModbusType::Coil, ModbusType::DiscreteInput, ModbusType::InputRegister, ModbusType::HoldingRegister];
            let points: Vec<Point> = specs.iter().enumerate()
                .map(|(i, &(k, a, d))| point(&i.to_string(), kinds[k], a, DataType::ALL[d]))
                .collect();
            let requests = plan(&points, batch, gap);
            let mut seen = vec![0; points.len()];
            for r in &requests {
                prop_assert!(u32::from(r.count) <= r.kind.max_count());
                for &i in &r.points {
                    seen[i] += 1;
                    prop_assert_eq!(points[i].modbus_type, r.kind);
                    prop_assert!(points[i].address >= r.start);
                    prop_assert!(points[i].end() <= u32::from(r.start) + u32::from(r.count));
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1));
        }
    }
}
