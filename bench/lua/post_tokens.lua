-- POST {"token": ...} to a path, tokens taken in turn from a file (one per line).
-- wrk -s post_tokens.lua URL -- PATH TOKENS_FILE [AUTHORIZATION]
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")
local tokens, counter, path

setup = common.setup

function init(args)
  path, tokens = args[1], common.lines(args[2])
  counter = common.offset(#tokens)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[3] then wrk.headers["Authorization"] = args[3] end
end

function request()
  counter = counter + 1
  return wrk.format(nil, path, nil, '{"token":"' .. tokens[(counter - 1) % #tokens + 1] .. '"}')
end

function done(summary, latency, requests) common.done(summary, latency) end
