package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// EventVersion is the version of the event payloads defined in this package.
const EventVersion = 1

// Event is the envelope of every JetStream event, after CloudEvents. ID is also the
// Nats-Msg-Id, so a re-published event is de-duplicated.
type Event struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Source  string          `json:"source"`
	Time    time.Time       `json:"time"`
	Version int             `json:"version"`
	Data    json.RawMessage `json:"data"`
}

// NewEvent builds an envelope around data.
func NewEvent(id, typ, source string, at time.Time, data any) (Event, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s event data: %w", typ, err)
	}
	return Event{ID: id, Type: typ, Source: source, Time: at.UTC(), Version: EventVersion, Data: raw}, nil
}

// MessageCreated asks for an answer to a user message (type SubjectMessageCreated).
type MessageCreated struct {
	ChatID             string `json:"chat_id"`
	UserID             string `json:"user_id"`
	UserMessageID      string `json:"user_message_id"`
	AssistantMessageID string `json:"assistant_message_id"`
	Model              string `json:"model"`
	// RequestID is the id of the HTTP request that asked for the answer (empty when
	// none): the worker's log lines and its calls carry it, so one id follows a
	// message from the gateway through the outbox to the worker and back to chat.
	RequestID string `json:"request_id,omitempty"`
}

// MessageCompleted says an answer reached a terminal status (type SubjectMessageCompleted).
type MessageCompleted struct {
	ChatID  string  `json:"chat_id"`
	UserID  string  `json:"user_id"`
	Message Message `json:"message"`
}

// ChatUpdated says a chat changed (type SubjectChatUpdated).
type ChatUpdated struct {
	UserID string `json:"user_id"`
	Chat   Chat   `json:"chat"`
}
