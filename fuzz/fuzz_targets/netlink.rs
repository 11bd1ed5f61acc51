//! Netlink replies as the nft backend reads them from the kernel (dumps of
//! sets and elements, acks, generation ids): malformed buffers are cut
//! short, never read past, and prefixes rebuilt from interval elements
//! hold the elements they came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nftjail::enforce::nft::wire;

fuzz_target!(|data: &[u8]| {
    let range = data.as_ptr_range();
    for msg in wire::messages(data) {
        // Every body is a slice of the buffer.
        let body = msg.body.as_ptr_range();
        assert!(msg.body.is_empty() || (body.start >= range.start && body.end <= range.end));
        let _ = wire::parse_table_name(msg.body);
        let _ = wire::parse_set_name(msg.body);
        let _ = wire::parse_gen_id(msg.body);
        let elems = wire::parse_elements(msg.body);
        for (net, elem) in wire::elements_to_nets(&elems) {
            assert!(!elem.interval_end);
            assert_eq!(
                net.network(),
                elem.addr,
                "{net} is not the prefix starting at {}",
                elem.addr
            );
            assert!(net.contains(&elem.addr));
        }
    }
    let mut n = 0usize;
    for (_, value) in wire::attrs(data) {
        let v = value.as_ptr_range();
        assert!(value.is_empty() || (v.start >= range.start && v.end <= range.end));
        n += 1;
    }
    assert!(n <= data.len() / 4);
});
