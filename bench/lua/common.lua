-- Shared by the bench scripts: thread ids, reading a token list, and one JSON
-- line of results in done() (bench/load.py parses the last line of wrk's output).
local common = {}
local threads = {}

function common.setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function common.lines(file)
  local lines = {}
  for line in io.lines(file) do lines[#lines + 1] = line end
  assert(#lines > 0, "empty list: " .. file)
  return lines
end

-- This thread's slice start, so threads do not send the same token at once.
-- (wrk starts each thread as soon as it is set up: the count comes from bench/load.py.)
function common.offset(count)
  local threads = tonumber(os.getenv("BENCH_WRK_THREADS")) or 1
  return (thread_id - 1) * math.floor(count / threads)
end

function common.done(summary, latency)
  local statuses = {}
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses") or {}
    for status, n in pairs(seen) do
      statuses[tostring(status)] = (statuses[tostring(status)] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(statuses) do parts[#parts + 1] = string.format('"%s":%d', status, n) end
  local e = summary.errors
  io.write(string.format(
    '\n{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,' ..
    '"socket_errors":%d,"non_2xx":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.connect + e.read + e.write + e.timeout, e.status, table.concat(parts, ",")))
end

return common
