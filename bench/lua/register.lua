-- Register consoles over the instances listed in a file.
-- wrk -s register.lua URL -- INSTANCES_FILE AUTHORIZATION CONSOLE_HOST MODE PORT_BASE
-- MODE new: every request a new (instance, port): ports PORT_BASE + 500 per thread + n.
-- MODE rotate: one port per instance and thread, again and again (each request gives
-- a registered console a new token, revoking the old one).
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")
local instances, counter, console_host, mode, base
statuses = {}

setup = common.setup

function init(args)
  instances, console_host, mode, base = common.lines(args[1]), args[3], args[4], tonumber(args[5])
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = args[2]
end

function request()
  counter = counter + 1
  local instance = instances[(counter - 1) % #instances + 1]
  local n = math.floor((counter - 1) / #instances)
  local port
  if mode == "rotate" then
    port = base + thread_id - 1
  else
    port = base + (thread_id - 1) * 500 + n
  end
  return wrk.format(nil, "/v1/consoles", nil, string.format(
    '{"instance_uuid":"%s","host":"%s","port":%d,"console_type":"novnc","ttl":600}',
    instance, console_host, port))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests) common.done(summary, latency) end
