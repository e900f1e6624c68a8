module github.com/parley-chat/parley/services/inference

go 1.26.0

require github.com/parley-chat/parley/libs/events v0.0.0

replace github.com/parley-chat/parley/libs/events => ../../libs/events
