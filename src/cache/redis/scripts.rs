//! The Lua scripts behind every Redis command of the layer, and the helpers they need.

/// The checks a generation must pass to be incremented: digits only, short enough that INCR
/// never overflows. Anything else (garbage, another type) is replaced by a fresh random value.
const VALID_GENERATION: &str = r"
local function valid(g)
  return type(g) == 'string' and #g <= 18 and string.match(g, '^%d+$') ~= nil
end
";

/// KEYS: entry, generation. ARGV: a fresh generation, generation TTL (ms).
/// Returns {generation, value or nil, entry TTL (ms), 1 if the generation was repaired}.
const LOOKUP_SCRIPT: &str = r"
local g = redis.pcall('GET', KEYS[2])
local repaired = 0
if not valid(g) then
  if g then repaired = 1 end
  g = ARGV[1]
  redis.call('SET', KEYS[2], g, 'PX', ARGV[2])
end
local v = redis.call('GET', KEYS[1])
local ttl = -2
if v then ttl = redis.call('PTTL', KEYS[1]) end
return {g, v, ttl, repaired}
";

/// KEYS: entry, generation. ARGV: generation seen at the miss, value, TTL (ms).
const FILL_SCRIPT: &str = r"
if redis.pcall('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// KEYS: generation. ARGV: a fresh generation, generation TTL (ms), channel, message ('' for
/// none). Returns 1 if the generation was repaired.
const INVALIDATE_SCRIPT: &str = r"
local g = redis.pcall('GET', KEYS[1])
local repaired = 0
if valid(g) then
  redis.call('INCR', KEYS[1])
else
  if g then repaired = 1 end
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[3], ARGV[4]) end
return repaired
";

/// A fresh generation: random, so that nothing issued before Redis forgot a generation can
/// match the new one; far below i64::MAX, so INCR never overflows.
pub(super) fn fresh_generation() -> u64 {
    fastrand::u64(1..100_000_000_000_000_000)
}

/// `text` matched literally in a SCAN pattern.
pub(super) fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

pub(super) struct Scripts {
    pub(super) lookup: redis::Script,
    pub(super) fill: redis::Script,
    pub(super) invalidate: redis::Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let with_checks = |body: &str| redis::Script::new(&format!("{VALID_GENERATION}{body}"));
        Scripts {
            lookup: with_checks(LOOKUP_SCRIPT),
            fill: redis::Script::new(FILL_SCRIPT),
            invalidate: with_checks(INVALIDATE_SCRIPT),
        }
    }
}
