//! The NPY v1.0 array format (numpy's `.npy`) for the datastore's keys and values: the magic
//! `\x93NUMPY`, version `1 0`, a little-endian `u16` header length, then an ASCII header
//! `{'descr': '<f2', 'fortran_order': False, 'shape': (N, D), }` padded with spaces and a
//! `\n` so the data starts at a multiple of 64 bytes, then the data, little-endian, C order.
//! `numpy.load(path, mmap_mode="r")` reads these files as they are, and numpy-written files of
//! the same dtype read here.

/// The first six bytes of every `.npy` file.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The data alignment numpy uses (and this writer keeps).
pub const ALIGN: usize = 64;

/// Element types of the datastore arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE binary16, `<f2`.
    F16,
    /// IEEE binary32, `<f4`.
    F32,
    /// Unsigned 32-bit integer, `<u4`.
    U32,
}

impl Dtype {
    /// numpy's type string.
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::F16 => "<f2",
            Dtype::F32 => "<f4",
            Dtype::U32 => "<u4",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F16 => 2,
            Dtype::F32 | Dtype::U32 => 4,
        }
    }

    fn from_descr(descr: &str) -> Option<Self> {
        [Dtype::F16, Dtype::F32, Dtype::U32]
            .into_iter()
            .find(|d| d.descr() == descr)
    }
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Element type.
    pub dtype: Dtype,
    /// Array shape.
    pub shape: Vec<usize>,
    /// Byte offset of the data.
    pub data_offset: usize,
}

impl Header {
    /// Bytes of data the shape calls for.
    pub fn data_bytes(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

/// The header bytes of an array of `dtype` and `shape` (a multiple of [`ALIGN`] long).
pub fn header_bytes(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        dtype.descr()
    );
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(ALIGN) - unpadded));
    dict.push('\n');
    let mut out = Vec::with_capacity(unpadded.next_multiple_of(ALIGN));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Parses the header at the start of `bytes`; the error says what is wrong.
pub fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let text = bytes
        .get(start..start + len)
        .ok_or("the header is cut off")?;
    let text = std::str::from_utf8(text).map_err(|_| "the header is not text")?;
    let descr = field(text, "descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let dtype = Dtype::from_descr(descr)
        .ok_or_else(|| format!("dtype {descr} is not one of <f2, <f4, <u4"))?;
    if field(text, "fortran_order")? != "False" {
        return Err("Fortran-order arrays are not supported".into());
    }
    let shape = field(text, "shape")?;
    let shape = shape
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad shape entry {s}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Header {
        dtype,
        shape,
        data_offset: start + len,
    })
}

/// The value text of `'key': value` in a numpy header dict.
fn field<'a>(text: &'a str, key: &str) -> Result<&'a str, String> {
    let at = text
        .find(&format!("'{key}':"))
        .ok_or_else(|| format!("the header has no '{key}'"))?;
    let rest = text[at + key.len() + 3..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find(',')
    };
    Ok(rest[..end.unwrap_or(rest.len())].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_align_the_data() {
        for (dtype, shape) in [
            (Dtype::F16, vec![3, 128]),
            (Dtype::F32, vec![1_000_000, 64]),
            (Dtype::U32, vec![7]),
        ] {
            let bytes = header_bytes(dtype, &shape);
            assert_eq!(bytes.len() % ALIGN, 0, "{dtype:?} {shape:?}");
            let header = parse_header(&bytes).expect("parses");
            assert_eq!(header.dtype, dtype);
            assert_eq!(header.shape, shape);
            assert_eq!(header.data_offset, bytes.len());
        }
    }

    /// A header exactly as `numpy.save` writes it (numpy 1.26, `np.zeros((2, 3), '<f2')`).
    #[test]
    fn reads_a_numpy_written_header() {
        let dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }";
        let mut bytes = MAGIC.to_vec();
        let padded = format!("{dict}{}\n", " ".repeat(128 - 10 - dict.len() - 1));
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
        bytes.extend_from_slice(padded.as_bytes());
        let header = parse_header(&bytes).expect("parses");
        assert_eq!(
            (header.dtype, header.shape, header.data_offset),
            (Dtype::F16, vec![2, 3], 128)
        );
    }

    #[test]
    fn bad_headers_say_what_is_wrong() {
        assert!(parse_header(b"PK\x03\x04 zip")
            .unwrap_err()
            .contains("magic"));
        let mut bytes = header_bytes(Dtype::F32, &[2, 2]);
        let at = bytes.windows(3).position(|w| w == b"<f4").expect("descr");
        bytes[at + 2] = b'8';
        assert!(parse_header(&bytes).unwrap_err().contains("<f8"));
        assert!(parse_header(&header_bytes(Dtype::F32, &[2, 2])[..20])
            .unwrap_err()
            .contains("cut off"));
    }
}
