-- Store a new version of a template, unless the newest already has this very source.
-- KEYS[1]: the template's hash, KEYS[2]: the index of names.
-- ARGV[1]: the name, ARGV[2]: the source as JSON, ARGV[3]: the time.
-- Returns {version, 1 if it is new else 0}. Versions are never changed once stored.
local latest = tonumber(redis.call('HGET', KEYS[1], 'latest') or '0')
if latest > 0 and redis.call('HGET', KEYS[1], 'v' .. latest) == ARGV[2] then
  return {latest, 0}
end
local version = latest + 1
redis.call('HSET', KEYS[1], 'v' .. version, ARGV[2], 't' .. version, ARGV[3], 'latest', version)
redis.call('SADD', KEYS[2], ARGV[1])
return {version, 1}
