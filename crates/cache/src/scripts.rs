//! The Lua scripts of the Redis tier. Each touches the keys of one slot only and, except
//! the single-node invalidation kept from before clusters, declares every key it touches.

use std::time::Duration;

use crate::conn::Conn;

/// Sets the value, adds the key to each tag's sorted set (score = expiry in
/// ms), prunes expired members, keeps each tag set alive as long as its
/// longest-lived member, bumps the key's generation, then publishes the
/// overwrite. Atomic, so an invalidation of a tag sees the entry either
/// entirely before or entirely after: an entry written during an
/// invalidation is never orphaned.
///
/// Conditional form (a loader's result): written only if the generations of
/// the key and of its tags are still those read before the load, so a value
/// loaded before an overwrite, delete or tag invalidation on any instance is
/// not put back into Redis. Returns 1 if written, 0 if not.
///
/// Without the value (store '0': values refused because they would be in the
/// clear) it writes neither the value nor the tag sets, but still checks and
/// bumps the generation and publishes, so coherence across instances holds.
///
/// KEYS: data, n tag sets, key generation, n tag generations.
/// ARGV: value ('' when not stored), ttl ms, member, channel, message, n,
/// conditional ('1'), store ('1'), expected generations (n + 1, '' for none).
pub(crate) const SET_SCRIPT: &str = r"
local n = tonumber(ARGV[6])
if ARGV[7] == '1' then
  for i = 0, n do
    local cur = redis.call('GET', KEYS[n + 2 + i]) or ''
    if cur ~= ARGV[9 + i] then return 0 end
  end
end
if ARGV[8] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local ttl = tonumber(ARGV[2])
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  local exp = now + ttl
  for i = 2, n + 1 do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    redis.call('ZADD', KEYS[i], exp, ARGV[3])
    local top = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', KEYS[i], top[2])
  end
end
redis.call('INCR', KEYS[n + 2])
redis.call('PEXPIRE', KEYS[n + 2], 60000)
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
";

/// Deletes every member of a tag and the tag set itself, bumps the tag's
/// generation, then publishes the invalidation (a [`Message`] with the
/// origin, the removed keys and the tag), atomically; returns the members
/// whose entry still existed.
///
/// KEYS: tag set, tag generation.
/// ARGV: data key prefix, channel, origin, tag.
pub(crate) const INVALIDATE_SCRIPT: &str = r"
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local removed = {}
for _, m in ipairs(members) do
  if redis.call('UNLINK', ARGV[1] .. m) == 1 then table.insert(removed, m) end
end
redis.call('UNLINK', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], 60000)
-- cjson encodes an empty table as {}, not []: leave `k` out when empty
-- (Message.k defaults to empty, as when serialised in Rust).
local msg = { o = ARGV[3], t = ARGV[4] }
if #removed > 0 then msg.k = removed end
redis.call('PUBLISH', ARGV[2], cjson.encode(msg))
return removed
";

/// The cluster form of [`INVALIDATE_SCRIPT`], for one bucket: every key it touches is
/// declared, so the members of the tag set were read first (`ZRANGE`) and are passed back.
/// Deletes the declared members still in the set (entry and membership), bumps the tag's
/// generation, publishes the invalidation when it removed something (or when asked to:
/// one bucket of every invalidation tells the other instances of the tag even when Redis
/// held nothing), and returns the removed members and the members it was not given (written
/// between the read and this script: they were there before it ran, so the caller runs it
/// again for them). A member added after it ran stays in the set, indexed, never orphaned.
///
/// KEYS: tag set, tag generation, the data key of each declared member.
/// ARGV: channel, origin, tag, always publish ('1'), the declared members (as KEYS 3..).
pub(crate) const BUCKET_INVALIDATE_SCRIPT: &str = r"
local declared = {}
for i = 5, #ARGV do declared[ARGV[i]] = i - 2 end
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local removed, left = {}, {}
for _, m in ipairs(members) do
  local k = declared[m]
  if k then
    if redis.call('UNLINK', KEYS[k]) == 1 then table.insert(removed, m) end
    redis.call('ZREM', KEYS[1], m)
  else
    table.insert(left, m)
  end
end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], 60000)
if #removed > 0 or ARGV[4] == '1' then
  local msg = { o = ARGV[2], t = ARGV[3] }
  if #removed > 0 then msg.k = removed end
  redis.call('PUBLISH', ARGV[1], cjson.encode(msg))
end
return { removed, left }
";

/// Deletes entries of one bucket, bumps their generations (so loads in flight do not write
/// back what was deleted) and publishes the delete; returns how many existed.
///
/// KEYS: n data keys, then their n generation keys. ARGV: channel, message.
pub(crate) const DELETE_SCRIPT: &str = r"
local n = #KEYS / 2
local removed = 0
for i = 1, n do
  removed = removed + redis.call('DEL', KEYS[i])
  redis.call('INCR', KEYS[n + i])
  redis.call('PEXPIRE', KEYS[n + i], 60000)
end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return removed
";

/// A load's lock across instances (`load_lock.rs`): `{1}` if the value is there already;
/// `{2, '', 0, generations}` if the lock was taken (`SET NX PX`), with the generations of the
/// key and of its tags read in the same step (the load needs them, so taking the lock costs
/// no round trip); else `{0, holder's token, remaining life in ms}`. The value, the lock and
/// the generations are in one slot (the entry's bucket).
///
/// KEYS: data, lock, key generation, tag generations. ARGV: token, ttl ms.
pub(crate) const LOAD_LOCK_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {1, '', 0, {}} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local gens = {}
  for i = 3, #KEYS do gens[i - 2] = redis.call('GET', KEYS[i]) or '' end
  return {2, '', 0, gens}
end
return {0, redis.call('GET', KEYS[2]) or '', redis.call('PTTL', KEYS[2]), {}}
";

/// Releases a load's lock if it still holds the caller's token (a lock that expired and
/// was taken by another load is left alone) and, when no value was left behind (the load
/// failed, was stale or cancelled), publishes the release so waiters ask again; a written
/// value has published its own message. Returns 1 if released.
///
/// KEYS: lock, data. ARGV: token, channel, release message.
pub(crate) const LOAD_UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return 1
";

/// An `EVALSHA` of `script` over `keys`; the caller adds the arguments.
pub(crate) fn evalsha(script: &redis::Script, keys: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    cmd
}

/// Loads every script (on a cluster: into every master), so a pipeline of `EVALSHA`s
/// finds them.
pub(crate) async fn load_all(conn: &mut Conn) -> redis::RedisResult<()> {
    for src in [SET_SCRIPT, DELETE_SCRIPT, BUCKET_INVALIDATE_SCRIPT] {
        redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(src)
            .query_async::<redis::Value>(conn)
            .await?;
    }
    Ok(())
}

/// Runs `cmd` (an [`evalsha`] of `src`), followed in the same round trip by `WAIT` for
/// `wait`'s replicas when given; returns the script's result and the replicas that
/// acknowledged. A node without the script (a replica just promoted) gets it loaded, and
/// the command runs once more.
pub(crate) async fn eval<T: redis::FromRedisValue>(
    conn: &mut Conn,
    src: &str,
    cmd: &redis::Cmd,
    wait: Option<(u32, Duration)>,
) -> redis::RedisResult<(T, Option<u32>)> {
    let once = |conn: &mut Conn| {
        let mut conn = conn.clone();
        async move {
            match wait {
                None => cmd.query_async::<T>(&mut conn).await.map(|v| (v, None)),
                Some((n, t)) => {
                    let mut p = redis::pipe();
                    p.add_command(cmd.clone())
                        .cmd("WAIT")
                        .arg(n)
                        .arg(u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
                    let (v, acks): (T, u32) = p.query_async(&mut conn).await?;
                    Ok((v, Some(acks)))
                }
            }
        }
    };
    match once(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::NoScriptError => {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(src)
                .query_async::<redis::Value>(conn)
                .await?;
            once(conn).await
        }
        other => other,
    }
}
