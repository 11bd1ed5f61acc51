//! The Lua scripts run inside Redis. Each is one atomic step, sent as one
//! EVALSHA per batch (the client loads a script the server does not know
//! yet): the stream and the set of active bans never disagree, and a
//! farm-wide count is never read between another node's add and trim.

use std::sync::LazyLock;

/// The stream of bans and unbans.
pub const STREAM: &str = "nftjail:bans";
/// Bans still running: member `JAIL TARGET`, score the end (ms since the epoch).
pub const ACTIVE: &str = "nftjail:active";
/// Nodes by their last heartbeat (ms since the epoch). A hash, not a key per
/// node found by SCAN: the farm's Redis often holds a mail filter's
/// millions of keys, which a SCAN would walk every time.
pub const NODES: &str = "nftjail:nodes";
/// Farm-wide failure counts: one sorted set per jail and address.
pub const FAILURES: &str = "nftjail:failures:";

/// Records: KEYS[1] the stream, KEYS[2] the active set; ARGV[1] the
/// oldest stream id to keep (`MS-0`), ARGV[2] now (ms), then per record
/// its node, op, jail, target, until and cause ("" for an unban).
pub static PUBLISH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local n = 0
for i = 3, #ARGV, 6 do
  local node, op, jail, target, untl, cause =
    ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5]
  if op == 'ban' then
    redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*', 'v', '1', 'node', node,
      'op', op, 'jail', jail, 'target', target, 'until', untl, 'cause', cause)
    redis.call('ZADD', KEYS[2], 'GT', untl, jail .. ' ' .. target)
  else
    redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*', 'v', '1', 'node', node,
      'op', op, 'jail', jail, 'target', target)
    redis.call('ZREM', KEYS[2], jail .. ' ' .. target)
  end
  n = n + 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
return n
"#,
    )
});

/// What a node starts from: KEYS[1] the stream, KEYS[2] the active set;
/// ARGV[1] now (ms). Returns the stream's last id ("0-0" when empty) and
/// the running bans with their ends, read in one step so that nothing
/// falls between the two.
pub static SNAPSHOT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
local last = '0-0'
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top > 0 then last = top[1][1] end
return {last, redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')}
"#,
    )
});

/// Farm-wide counting: KEYS[i] the set of address i's failures in its
/// jail; ARGV[1] now (ms), then per key the failure's time (ms), a member
/// unique to it, findtime (ms) and maxretry. A count that reaches maxretry
/// is cleared (so one ban is decided, by the node whose failure reached
/// it). Returns, flat, the 1-based index and count of each decided ban.
pub static COUNT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local b = 2 + (i - 1) * 4
  local t, member = tonumber(ARGV[b]), ARGV[b + 1]
  local find, maxretry = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  if t > now - find then
    redis.call('ZADD', KEYS[i], t, member)
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - find)
    local n = redis.call('ZCARD', KEYS[i])
    if n >= maxretry then
      redis.call('DEL', KEYS[i])
      out[#out + 1] = i
      out[#out + 1] = n
    else
      redis.call('PEXPIRE', KEYS[i], find)
    end
  end
end
return out
"#,
    )
});
