-- KEYS[1] global epoch (string, ms), KEYS[2] the log
-- ARGV[1] retention ms (max token age + 2 leeway + 1), ARGV[2] channel
-- Returns the epoch.
return raise_epoch(KEYS[1], now_ms(), tonumber(ARGV[1]), KEYS[2], ARGV[2])
