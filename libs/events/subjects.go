// Package events is the one place that defines the contract between the services:
// NATS subjects, stream names, event and request/reply payloads, error codes, and the
// small NATS helpers every service shares. A payload is defined here once and imported
// by both sides; within a version only optional fields are added.
package events

// Request-reply subjects served by the auth service (a micro service).
const (
	AuthService        = "auth"
	SubjectAuthSignup  = "auth.v1.user.signup"
	SubjectAuthLogin   = "auth.v1.session.login"
	SubjectAuthRefresh = "auth.v1.session.refresh"
	SubjectAuthLogout  = "auth.v1.session.logout"
	SubjectAuthMe      = "auth.v1.user.get"
	SubjectAuthKeys    = "auth.v1.keys.get"
)

// Request-reply subjects served by the chat service (a micro service).
const (
	ChatService            = "chat"
	SubjectChatCreate      = "chat.v1.chat.create"
	SubjectChatGet         = "chat.v1.chat.get"
	SubjectChatLatest      = "chat.v1.chat.latest"
	SubjectChatList        = "chat.v1.chat.list"
	SubjectChatUpdate      = "chat.v1.chat.update"
	SubjectChatDelete      = "chat.v1.chat.delete"
	SubjectChatRegenerate  = "chat.v1.chat.regenerate"
	SubjectMessageList     = "chat.v1.message.list"
	SubjectMessageSend     = "chat.v1.message.send"
	SubjectMessageGet      = "chat.v1.message.get"
	SubjectMessageCancel   = "chat.v1.message.cancel"
	SubjectConversationGet = "chat.v1.conversation.get"
	SubjectMessageStart    = "chat.v1.message.start"
	SubjectMessageComplete = "chat.v1.message.complete"
)

// Request-reply subjects served by the inference workers.
const (
	InferenceService  = "inference"
	SubjectModelsList = "inference.v1.models.list"
)

// JetStream streams, their subjects and consumers.
const (
	// StreamChatEvents holds the chat service's domain events (published by its outbox relay).
	StreamChatEvents = "CHAT_EVENTS"
	// SubjectChatEvents matches every chat event.
	SubjectChatEvents = "chat.events.>"
	// SubjectMessageCreated asks for an answer: an assistant message is pending.
	SubjectMessageCreated = "chat.events.message.created"
	// SubjectMessageCompleted says an assistant message reached a terminal status.
	SubjectMessageCompleted = "chat.events.message.completed"
	// SubjectChatUpdated says a chat's title, model or activity changed.
	SubjectChatUpdated = "chat.events.chat.updated"
	// ConsumerInference is the durable pull consumer shared by every inference worker.
	ConsumerInference = "inference"

	// StreamGenerations holds each answer's generation events, so any gateway replica
	// can relay or resume a stream from any sequence number.
	StreamGenerations = "GENERATIONS"
	// SubjectGenerationsAll matches every generation subject.
	SubjectGenerationsAll = "gen.>"

	// BucketRevokedSessions is a KV bucket of session ids whose access tokens must be
	// refused at once (logout); its TTL is the longest access-token lifetime.
	BucketRevokedSessions = "AUTH_REVOKED_SESSIONS"
)

// SubjectGeneration is the subject carrying the generation events of one assistant message.
func SubjectGeneration(messageID string) string { return "gen." + messageID }

// SubjectCancel is the core NATS subject on which a cancel for one message is broadcast;
// the worker holding that message listens on it.
func SubjectCancel(messageID string) string { return "inference.cancel." + messageID }
