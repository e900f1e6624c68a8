package events

// StartMessageReply answers SubjectMessageStart. It is a superset of MessageReply (a
// client decoding MessageReply reads the same message).
type StartMessageReply struct {
	Message Message `json:"message"`
	// Conversation is what SubjectConversationGet returns for the answer, set when
	// StartMessageRequest.WithConversation asked for it (saving the worker that
	// request).
	Conversation *ConversationReply `json:"conversation,omitempty"`
	// FirstStart says the answer was pending: no attempt had started it before this
	// one, so nothing was streamed for it yet.
	FirstStart bool `json:"first_start,omitempty"`
}
