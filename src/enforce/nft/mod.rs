//! nft backend over netlink.
