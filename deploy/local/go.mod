module github.com/parley-chat/parley/deploy/local

go 1.26.0

require github.com/parley-chat/parley/libs/events v0.0.0
require github.com/parley-chat/parley/libs/devstack v0.0.0
require github.com/parley-chat/parley/db v0.0.0
require github.com/parley-chat/parley/services/auth v0.0.0
require github.com/parley-chat/parley/services/chat v0.0.0
require github.com/parley-chat/parley/services/inference v0.0.0
require github.com/parley-chat/parley/services/gateway v0.0.0

replace github.com/parley-chat/parley/libs/events => ../../libs/events
replace github.com/parley-chat/parley/libs/devstack => ../../libs/devstack
replace github.com/parley-chat/parley/db => ../../db
replace github.com/parley-chat/parley/services/auth => ../../services/auth
replace github.com/parley-chat/parley/services/chat => ../../services/chat
replace github.com/parley-chat/parley/services/inference => ../../services/inference
replace github.com/parley-chat/parley/services/gateway => ../../services/gateway
