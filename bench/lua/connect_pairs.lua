-- Connect/disconnect pairs: connect a token's console, then disconnect its lease
-- with a later request of the same thread.  Statuses are counted (409 = still held).
-- wrk -s connect_pairs.lua URL -- TOKENS_FILE AUTHORIZATION PROXY_ID
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")
local tokens, counter, proxy_id
local held = {}
statuses = {}

setup = common.setup

function init(args)
  tokens = common.lines(args[1])
  counter = common.offset(#tokens)
  proxy_id = args[3]
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = args[2]
end

function request()
  local lease = table.remove(held, 1)
  if lease then
    return wrk.format(nil, "/v1/leases/" .. lease .. "/disconnect", nil, "{}")
  end
  counter = counter + 1
  local token = tokens[(counter - 1) % #tokens + 1]
  return wrk.format(nil, "/v1/tokens/connect", nil,
    '{"token":"' .. token .. '","proxy_id":"' .. proxy_id .. '"}')
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    local lease = body:match('"lease":{[^}]-"id":"([^"]+)"') or body:match('"lease_id":"([^"]+)"')
    if lease then held[#held + 1] = lease end
  end
end

function done(summary, latency, requests) common.done(summary, latency) end
