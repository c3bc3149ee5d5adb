//! The decoders of typed messages (`spool::format::typed`) on arbitrary
//! bytes: the body of `message_type.meta` (alone and framed), and the
//! envelope of a typed payload followed by the default codec decoding a
//! struct of every common shape.
//!
//! Never a panic; whatever decodes re-encodes to the same bytes (each has
//! exactly one encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use spool::format::meta::{self, MESSAGE_TYPE_MAGIC};
use spool::format::typed::{decode_envelope, decode_identity, encode_identity, put_envelope};
use spool::{Codec, Postcard};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Kind {
    A,
    B(u32),
    C { x: i64, y: Option<String> },
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Shape {
    id: u64,
    name: String,
    tags: Vec<String>,
    kind: Kind,
    extra: BTreeMap<u16, Vec<u8>>,
    ratio: f32,
}

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = decode_identity(data) {
        assert_eq!(encode_identity(&id).as_deref(), Some(data));
    }
    if let Ok((_, body)) = meta::decode(MESSAGE_TYPE_MAGIC, data) {
        let _ = decode_identity(body);
    }
    // The bytes as a framed file with a valid CRC: its body is what is tested.
    let framed = meta::encode(MESSAGE_TYPE_MAGIC, meta::MESSAGE_TYPE_VERSION, data);
    let (_, body) = meta::decode(MESSAGE_TYPE_MAGIC, &framed).expect("just framed");
    let _ = decode_identity(body);

    if let Ok((version, rest)) = decode_envelope(data) {
        let mut again = Vec::new();
        put_envelope(&mut again, version);
        again.extend_from_slice(rest);
        assert_eq!(again, data);
        if let Ok(shape) = Postcard::decode::<Shape>(rest) {
            let mut out = Vec::new();
            Postcard::encode(&shape, &mut out).expect("a decoded value encodes");
            // Floats (NaN payloads) aside, the value survives a round trip.
            let back: Shape = Postcard::decode(&out).expect("its own encoding decodes");
            if shape.ratio == shape.ratio {
                assert_eq!(back, shape);
            }
        }
    }
});
