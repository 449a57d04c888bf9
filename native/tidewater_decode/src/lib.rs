//! Debezium Connect-JSON envelopes → Arrow column buffers, in one pass and without the GIL.
//!
//! `decode_envelopes` is the compiled fast path of `tidewater.drain.debezium.decode`: it takes a chunk's
//! record values (all of one Connect schema, whose text is the given prefix), slices each payload,
//! parses it, picks the row image (`after`, or `before` for deletes) and converts every column to the
//! storage of its Arrow type (Decimal base64 → decimal128 unscaled, ZonedTimestamp → µs since epoch,
//! narrow ints range-checked, …). Python wraps the buffers with `pa.Array.from_buffers`.
//!
//! It is exact by refusing: whenever a record is anything but a plain, valid change event whose
//! values convert exactly as the Python decoder would convert them (another schema, a bad op, a value
//! of the wrong JSON type, a decimal outside int64, an unusual timestamp text, …), it returns None
//! and the caller runs the Python decoder, which quarantines or converts as it always has.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// Longest payload decoded here; longer ones go to the Python decoder (Arrow's JSON reader parses
/// in 4 MiB blocks and treats an object larger than a block differently).
const MAX_PAYLOAD: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Int8,
    Int16,
    Int32,
    Int64,
    Float64,
    Boolean,
    String,
    BinaryBase64,
    DecimalBase64,
    ZonedTimestampMicros,
}

impl Kind {
    fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "int8" => Kind::Int8,
            "int16" => Kind::Int16,
            "int32" => Kind::Int32,
            "int64" => Kind::Int64,
            "float64" => Kind::Float64,
            "boolean" => Kind::Boolean,
            "string" => Kind::String,
            "binary_base64" => Kind::BinaryBase64,
            "decimal_base64" => Kind::DecimalBase64,
            "zoned_timestamp_us" => Kind::ZonedTimestampMicros,
            _ => return None,
        })
    }

    /// Whether a JSON value of this kind of cell is what Arrow's JSON reader accepts for the column.
    fn accepts(self, cell: &Cell) -> bool {
        matches!(
            (self, cell),
            (_, Cell::Null)
                | (Kind::Int8 | Kind::Int16 | Kind::Int32 | Kind::Int64, Cell::Int(_))
                | (Kind::Float64, Cell::Int(_) | Cell::UInt(_) | Cell::Float(_))
                | (Kind::Boolean, Cell::Bool(_))
                | (Kind::String | Kind::BinaryBase64 | Kind::DecimalBase64 | Kind::ZonedTimestampMicros, Cell::Str(_))
        )
    }
}

/// One JSON scalar as parsed (strings borrowed from the record unless they hold escapes).
#[derive(Debug)]
enum Cell<'de> {
    Null,
    Int(i64),
    UInt(u64), // above i64::MAX
    Float(f64),
    Bool(bool),
    Str(Cow<'de, str>),
}

struct CellVisitor;

impl<'de> Visitor<'de> for CellVisitor {
    type Value = Cell<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON scalar")
    }
    fn visit_unit<E>(self) -> Result<Cell<'de>, E> {
        Ok(Cell::Null)
    }
    fn visit_none<E>(self) -> Result<Cell<'de>, E> {
        Ok(Cell::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Cell<'de>, E> {
        Ok(Cell::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Cell<'de>, E> {
        Ok(Cell::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Cell<'de>, E> {
        Ok(i64::try_from(v).map(Cell::Int).unwrap_or(Cell::UInt(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Cell<'de>, E> {
        Ok(Cell::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cell<'de>, E> {
        Ok(Cell::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cell<'de>, E> {
        Ok(Cell::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Cell<'de>, E> {
        Ok(Cell::Str(Cow::Owned(v)))
    }
}

struct CellSeed;

impl<'de> DeserializeSeed<'de> for CellSeed {
    type Value = Cell<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cell<'de>, D::Error> {
        d.deserialize_any(CellVisitor)
    }
}

/// The index in `keys` of the map's next key that is one of them, skipping the values of all other keys;
/// None at the end of the map. A key given twice, or one with escapes (not borrowable), is an error: the
/// record then goes to the Python decoder.
fn next_known_key<'de, A: MapAccess<'de>, K: AsRef<str>>(map: &mut A, keys: &[K], seen: &mut [bool])
    -> Result<Option<usize>, A::Error> {
    while let Some(key) = map.next_key::<&'de str>()? {
        match keys.iter().position(|known| known.as_ref() == key) {
            Some(index) if seen[index] => return Err(de::Error::custom("duplicate key")),
            Some(index) => {
                seen[index] = true;
                return Ok(Some(index));
            }
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(None)
}

/// A row image (`before` / `after`): null, or an object whose known keys fill `cells`.
struct ImageSeed<'s, 'de> {
    names: &'s [String],
    cells: &'s mut Vec<Cell<'de>>,
}

impl<'de> DeserializeSeed<'de> for ImageSeed<'_, 'de> {
    type Value = bool; // present (not null)
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ImageSeed<'_, 'de> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row image object or null")
    }
    fn visit_none<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        self.cells.clear();
        self.cells.resize_with(self.names.len(), || Cell::Null);
        let mut seen = vec![false; self.names.len()];
        while let Some(index) = next_known_key(&mut map, self.names, &mut seen)? {
            self.cells[index] = map.next_value_seed(CellSeed)?;
        }
        Ok(true)
    }
}

/// `source`: only ts_ms, lsn and txId are read (as Arrow's reader does with the drain's parse schema).
#[derive(Default)]
struct Source {
    ts_ms: Option<i64>,
    lsn: Option<i64>,
    tx_id: Option<i64>,
}

struct SourceSeed;

impl<'de> DeserializeSeed<'de> for SourceSeed {
    type Value = Source;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Source, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for SourceSeed {
    type Value = Source;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a source object or null")
    }
    fn visit_none<E>(self) -> Result<Source, E> {
        Ok(Source::default())
    }
    fn visit_unit<E>(self) -> Result<Source, E> {
        Ok(Source::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Source, D::Error> {
        d.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Source, A::Error> {
        let mut source = Source::default();
        let mut seen = [false; 3];
        while let Some(index) = next_known_key(&mut map, &["ts_ms", "lsn", "txId"], &mut seen)? {
            let value = map.next_value::<Option<i64>>()?;
            match index {
                0 => source.ts_ms = value,
                1 => source.lsn = value,
                _ => source.tx_id = value,
            }
        }
        Ok(source)
    }
}

/// One payload: both row images, op and source.
struct Envelope<'de> {
    before: Vec<Cell<'de>>,
    after: Vec<Cell<'de>>,
    has_before: bool,
    has_after: bool,
    op: Option<Cow<'de, str>>,
    source: Source,
}

struct EnvelopeVisitor<'s, 'de> {
    names: &'s [String],
    envelope: &'s mut Envelope<'de>,
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Debezium payload object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let envelope = self.envelope;
        let mut seen = [false; 4];
        while let Some(index) = next_known_key(&mut map, &["before", "after", "op", "source"], &mut seen)? {
            match index {
                0 => envelope.has_before = map.next_value_seed(ImageSeed { names: self.names, cells: &mut envelope.before })?,
                1 => envelope.has_after = map.next_value_seed(ImageSeed { names: self.names, cells: &mut envelope.after })?,
                2 => {
                    envelope.op = match map.next_value_seed(CellSeed)? {
                        Cell::Null => None,
                        Cell::Str(text) => Some(text),
                        _ => return Err(de::Error::custom("op is not a string")),
                    }
                }
                _ => envelope.source = map.next_value_seed(SourceSeed)?,
            }
        }
        Ok(())
    }
}

fn parse_payload<'de>(payload: &'de [u8], names: &[String], envelope: &mut Envelope<'de>) -> Option<()> {
    envelope.has_before = false;
    envelope.has_after = false;
    envelope.op = None;
    envelope.source = Source::default();
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    deserializer.deserialize_map(EnvelopeVisitor { names, envelope }).ok()?;
    deserializer.end().ok()
}

// ---------------------------------------------------------------------------------------------
// Arrow buffers

#[derive(Default)]
struct Bitmap {
    bytes: Vec<u8>,
    len: usize,
}

impl Bitmap {
    fn push(&mut self, bit: bool) {
        if self.len & 7 == 0 { // a new byte every 8 bits
            self.bytes.push(0);
        }
        if bit {
            *self.bytes.last_mut().unwrap() |= 1 << (self.len % 8);
        }
        self.len += 1;
    }
}

/// One Arrow column being built: validity, values (fixed width, bits, or offsets + bytes).
struct Column {
    kind: Kind,
    validity: Bitmap,
    null_count: usize,
    values: Vec<u8>,
    bits: Bitmap,
    offsets: Vec<i32>,
}

impl Column {
    fn new(kind: Kind, rows: usize) -> Column {
        let width = match kind {
            Kind::Int8 => 1,
            Kind::Int16 => 2,
            Kind::Int32 => 4,
            Kind::Int64 | Kind::Float64 | Kind::ZonedTimestampMicros => 8,
            Kind::DecimalBase64 => 16,
            Kind::Boolean => 0,
            Kind::String | Kind::BinaryBase64 => 16, // a guess at the mean length
        };
        let variable = matches!(kind, Kind::String | Kind::BinaryBase64);
        let mut offsets = Vec::with_capacity(if variable { rows + 1 } else { 0 });
        if variable {
            offsets.push(0);
        }
        Column {
            kind,
            validity: Bitmap::default(),
            null_count: 0,
            values: Vec::with_capacity(rows * width),
            bits: Bitmap::default(),
            offsets,
        }
    }

    fn push_null(&mut self) {
        self.validity.push(false);
        self.null_count += 1;
        match self.kind {
            Kind::Int8 => self.values.push(0),
            Kind::Int16 => self.values.extend_from_slice(&[0; 2]),
            Kind::Int32 => self.values.extend_from_slice(&[0; 4]),
            Kind::Int64 | Kind::Float64 | Kind::ZonedTimestampMicros => self.values.extend_from_slice(&[0; 8]),
            Kind::DecimalBase64 => self.values.extend_from_slice(&[0; 16]),
            Kind::Boolean => self.bits.push(false),
            Kind::String | Kind::BinaryBase64 => self.offsets.push(self.values.len() as i32),
        }
    }

    fn push_bytes(&mut self, bytes: &[u8]) -> Option<()> {
        self.values.extend_from_slice(bytes);
        self.offsets.push(i32::try_from(self.values.len()).ok()?);
        Some(())
    }

    /// Converts one value of the chosen row image as the Python decoder would; None when it would not
    /// convert the same way (or at all).
    fn push(&mut self, cell: &Cell) -> Option<()> {
        if let Cell::Null = cell {
            self.push_null();
            return Some(());
        }
        match (self.kind, cell) {
            (Kind::Int8, Cell::Int(v)) => self.values.extend_from_slice(&i8::try_from(*v).ok()?.to_le_bytes()),
            (Kind::Int16, Cell::Int(v)) => self.values.extend_from_slice(&i16::try_from(*v).ok()?.to_le_bytes()),
            (Kind::Int32, Cell::Int(v)) => self.values.extend_from_slice(&i32::try_from(*v).ok()?.to_le_bytes()),
            (Kind::Int64, Cell::Int(v)) => self.values.extend_from_slice(&v.to_le_bytes()),
            (Kind::Float64, Cell::Int(v)) => self.values.extend_from_slice(&(*v as f64).to_le_bytes()),
            (Kind::Float64, Cell::UInt(v)) => self.values.extend_from_slice(&(*v as f64).to_le_bytes()),
            (Kind::Float64, Cell::Float(v)) => self.values.extend_from_slice(&v.to_le_bytes()),
            (Kind::Boolean, Cell::Bool(v)) => self.bits.push(*v),
            (Kind::String, Cell::Str(text)) => self.push_bytes(text.as_bytes())?,
            (Kind::BinaryBase64, Cell::Str(text)) => self.push_bytes(&BASE64.decode(text.as_bytes()).ok()?)?,
            (Kind::DecimalBase64, Cell::Str(text)) => {
                self.values.extend_from_slice(&i128::from(decimal_unscaled(text)?).to_le_bytes())
            }
            (Kind::ZonedTimestampMicros, Cell::Str(text)) => {
                self.values.extend_from_slice(&zoned_timestamp_micros(text.as_bytes())?.to_le_bytes())
            }
            _ => return None,
        }
        self.validity.push(true);
        Some(())
    }

    fn into_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let validity = (self.null_count > 0).then(|| PyBytes::new(py, &self.validity.bytes));
        let (values, offsets) = match self.kind {
            Kind::Boolean => (PyBytes::new(py, &self.bits.bytes), None),
            Kind::String | Kind::BinaryBase64 => {
                let offsets: Vec<u8> = self.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
                (PyBytes::new(py, &self.values), Some(PyBytes::new(py, &offsets)))
            }
            _ => (PyBytes::new(py, &self.values), None),
        };
        Ok((self.null_count, validity, values, offsets).into_pyobject(py)?.into_any())
    }
}

/// Connect Decimal: base64 of the unscaled value's big-endian two's complement. Only values within
/// int64 are decoded here: the Python decoder stores those without a precision check, larger ones
/// with one, so a chunk holding a larger one is left to it.
fn decimal_unscaled(text: &str) -> Option<i64> {
    let bytes = BASE64.decode(text.as_bytes()).ok()?;
    if bytes.len() > 16 {
        return None;
    }
    let mut value: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) { -1 } else { 0 };
    for byte in bytes {
        value = (value << 8) | i128::from(byte);
    }
    i64::try_from(value).ok()
}

fn digits(text: &[u8]) -> Option<i64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0, |acc, d| acc * 10 + i64::from(d - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// io.debezium.time.ZonedTimestamp text → µs since the epoch (UTC), for the form Debezium writes:
/// `YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)`. Anything else is left to Arrow's cast.
fn zoned_timestamp_micros(text: &[u8]) -> Option<i64> {
    if text.len() < 20 || text[4] != b'-' || text[7] != b'-' || text[10] != b'T' || text[13] != b':' || text[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&text[0..4])?, digits(&text[5..7])?, digits(&text[8..10])?);
    let (hour, minute, second) = (digits(&text[11..13])?, digits(&text[14..16])?, digits(&text[17..19])?);
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23
        || minute > 59 || second > 59
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut micros = 0;
    if rest.first() == Some(&b'.') {
        let length = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=6).contains(&length) {
            return None;
        }
        micros = digits(&rest[1..=length])? * 10_i64.pow(6 - length as u32);
        rest = &rest[1 + length..];
    }
    let offset_seconds = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (hours, minutes) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'+' { seconds } else { -seconds }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1_000_000 + micros)
}

// ---------------------------------------------------------------------------------------------
// the chunk

const OPERATIONS: [&str; 5] = ["c", "u", "d", "r", "t"];

struct Decoded {
    rows: usize,
    tombstones: usize,
    offsets: Vec<i64>,
    columns: Vec<Column>,
    op: Column,
    source_ts: Column,
    lsn: Column,
    tx_id: Column,
}

fn decode_chunk(values: &[Option<&[u8]>], record_offsets: &[i64], prefix: &[u8], names: &[String], kinds: &[Kind])
    -> Option<Decoded> {
    let rows = values.len();
    let mut out = Decoded {
        rows: 0,
        tombstones: 0,
        offsets: Vec::with_capacity(rows),
        columns: kinds.iter().map(|kind| Column::new(*kind, rows)).collect(),
        op: Column::new(Kind::String, rows),
        source_ts: Column::new(Kind::Int64, rows),
        lsn: Column::new(Kind::Int64, rows),
        tx_id: Column::new(Kind::Int64, rows),
    };
    let mut envelope = Envelope { before: Vec::new(), after: Vec::new(), has_before: false, has_after: false, op: None,
                                  source: Source::default() };
    for (value, offset) in values.iter().zip(record_offsets) {
        let Some(value) = value else {
            out.tombstones += 1;
            continue;
        };
        if value.len() <= prefix.len() || !value.starts_with(prefix) || !value.ends_with(b"}") {
            return None; // another schema, or not an envelope
        }
        let payload = &value[prefix.len()..value.len() - 1];
        // Arrow reads newline-delimited JSON: a payload with a line break in it is not one row there.
        if payload.len() > MAX_PAYLOAD || memchr::memchr2(b'\n', b'\r', payload).is_some() {
            return None;
        }
        parse_payload(payload, names, &mut envelope)?;
        let op = envelope.op.as_deref()?;
        if !OPERATIONS.contains(&op) {
            return None;
        }
        let is_delete = op == "d";
        if (matches!(op, "c" | "u" | "r") && !envelope.has_after) || (is_delete && !envelope.has_before) {
            return None;
        }
        // An incremental snapshot's row ("r") has no LSN: the drain gives it the one before it in the partition.
        let lsn = match envelope.source.lsn {
            Some(lsn) => Cell::Int(lsn),
            None if op == "r" => Cell::Null,
            None => return None,
        };
        let (chosen, has_chosen, other, has_other) = if is_delete {
            (&envelope.before, envelope.has_before, &envelope.after, envelope.has_after)
        } else {
            (&envelope.after, envelope.has_after, &envelope.before, envelope.has_before)
        };
        if has_other && !kinds.iter().zip(other).all(|(kind, cell)| kind.accepts(cell)) {
            return None; // Arrow's reader would reject the record even though its value is not used
        }
        for (index, column) in out.columns.iter_mut().enumerate() {
            if has_chosen {
                column.push(&chosen[index])?;
            } else {
                column.push_null(); // a truncate: no row image
            }
        }
        out.op.push_bytes(op.as_bytes())?;
        out.op.validity.push(true);
        out.source_ts.push(&envelope.source.ts_ms.map_or(Cell::Null, Cell::Int))?;
        out.lsn.push(&lsn)?;
        out.tx_id.push(&envelope.source.tx_id.map_or(Cell::Null, Cell::Int))?;
        out.offsets.push(*offset);
        out.rows += 1;
    }
    Some(out)
}

/// decode_envelopes(values, offsets, prefix, columns) -> None | (rows, tombstones, offsets, columns, op,
/// source_ts, lsn, tx_id)
///
/// `values`: the record values (bytes, or None for tombstones) of consecutive records of one partition;
/// `offsets`: their Kafka offsets; `prefix`: the bytes before the payload (`{"schema":…,"payload":`);
/// `columns`: (name, kind) of the row image, kind one of int8, int16, int32, int64, float64, boolean,
/// string, binary_base64, decimal_base64, zoned_timestamp_us. Each column comes back as
/// (null_count, validity bitmap or None, values, offsets or None); `offsets` of the rows kept as int64.
/// None: some record needs the Python decoder.
#[pyfunction]
fn decode_envelopes<'py>(py: Python<'py>, values: &Bound<'py, PyList>, offsets: Vec<i64>, prefix: &[u8],
                         columns: Vec<(String, String)>) -> PyResult<Option<Bound<'py, PyAny>>> {
    if offsets.len() != values.len() {
        return Err(PyValueError::new_err(format!("{} values but {} offsets", values.len(), offsets.len())));
    }
    let mut names = Vec::with_capacity(columns.len());
    let mut kinds = Vec::with_capacity(columns.len());
    for (name, kind) in columns {
        kinds.push(Kind::from_name(&kind)
            .ok_or_else(|| PyValueError::new_err(format!("column {name}: unknown kind {kind:?}")))?);
        names.push(name);
    }
    let held: Vec<Option<Bound<'py, PyBytes>>> = values.iter()
        .map(|value| if value.is_none() { Ok(None) } else { value.cast_into::<PyBytes>().map(Some) })
        .collect::<Result<_, _>>()?;
    let slices: Vec<Option<&[u8]>> = held.iter().map(|value| value.as_ref().map(|bytes| bytes.as_bytes())).collect();
    let decoded = py.detach(|| decode_chunk(&slices, &offsets, prefix, &names, &kinds));
    let Some(decoded) = decoded else { return Ok(None) };
    let offsets: Vec<u8> = decoded.offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
    let columns = decoded.columns.into_iter().map(|column| column.into_py(py)).collect::<PyResult<Vec<_>>>()?;
    let result = (decoded.rows, decoded.tombstones, PyBytes::new(py, &offsets), columns, decoded.op.into_py(py)?,
                  decoded.source_ts.into_py(py)?, decoded.lsn.into_py(py)?, decoded.tx_id.into_py(py)?);
    Ok(Some(result.into_pyobject(py)?.into_any()))
}

#[pymodule]
fn tidewater_decode(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(decode_envelopes, module)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoned_timestamps() {
        assert_eq!(zoned_timestamp_micros(b"1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(zoned_timestamp_micros(b"1970-01-01T01:00:00.5+01:00"), Some(500_000));
        assert_eq!(zoned_timestamp_micros(b"1969-12-31T23:59:59.999999Z"), Some(-1));
        assert_eq!(zoned_timestamp_micros(b"2026-02-29T00:00:00Z"), None);
        assert_eq!(zoned_timestamp_micros(b"2026-11-23T18:13:07.1499651Z"), None);
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal_unscaled("DUg="), Some(3400));
        assert_eq!(decimal_unscaled("AA=="), Some(0));
        assert_eq!(decimal_unscaled("/w=="), Some(-1));
        assert_eq!(decimal_unscaled(""), Some(0));
        assert_eq!(decimal_unscaled("AIAAAAAAAAAA"), None); // 2**63
    }
}
