-- GET one path (the bare floor).  wrk -s get.lua URL -- PATH
package.path = debug.getinfo(1, "S").source:match("@(.*/)") .. "?.lua;" .. package.path
local common = require("common")
local path

setup = common.setup

function init(args) path = args[1] end

function request() return wrk.format("GET", path) end

function done(summary, latency, requests) common.done(summary, latency) end
