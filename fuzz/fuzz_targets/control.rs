//! The control protocol as the daemon reads it from a client (a length
//! frame, then JSON) and as a client reads answers: anything decoded must
//! encode back to the same message.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use nftjail::control::protocol::{
    decode_request, decode_response, encode, read_frame, FrameError, MAX_REQUEST,
};

fuzz_target!(|data: &[u8]| {
    let mut stream = Cursor::new(data);
    match read_frame(&mut stream, MAX_REQUEST) {
        Ok(body) => {
            assert!(body.len() <= MAX_REQUEST);
            let announced = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            assert_eq!(body.len(), announced);
            if let Ok(req) = decode_request(&body) {
                assert_eq!(decode_request(&encode(&req)), Ok(req));
            }
        }
        Err(FrameError::TooLarge { len, max }) => assert!(len > max),
        Err(_) => {}
    }
    if let Ok(req) = decode_request(data) {
        assert_eq!(decode_request(&encode(&req)), Ok(req));
    }
    if let Ok(resp) = decode_response(data) {
        assert_eq!(decode_response(&encode(&resp)), Ok(resp));
    }
});
