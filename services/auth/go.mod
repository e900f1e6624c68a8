module github.com/parley-chat/parley/services/auth

go 1.26.0

require github.com/parley-chat/parley/libs/events v0.0.0
require github.com/parley-chat/parley/db v0.0.0

replace github.com/parley-chat/parley/libs/events => ../../libs/events
replace github.com/parley-chat/parley/db => ../../db
