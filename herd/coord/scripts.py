"""Lua scripts the coordinator runs atomically inside Redis.

redis-py's ``register_script`` sends them by SHA and reloads them on NOSCRIPT,
so they keep working after Redis restarts with an empty script cache.
"""

# KEYS[1] counters hash; ARGV field, value, field, value... -> field, new value...
SET_MAX = """
local out = {}
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i]) or '0'
  if tonumber(cur) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    cur = ARGV[i + 1]
  end
  out[#out + 1] = ARGV[i]
  out[#out + 1] = cur
end
return out
"""
# KEYS[1] lease; ARGV holder, ttl_ms. Extends only a lease still held by holder.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1] lease; ARGV holder. Deletes only a lease held by holder.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
