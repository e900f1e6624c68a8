package events

import "time"

// Message roles and statuses.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleSystem    = "system"

	StatusPending   = "pending"
	StatusStreaming = "streaming"
	StatusComplete  = "complete"
	StatusCancelled = "cancelled"
	StatusFailed    = "failed"
)

// Terminal reports whether a message status is final.
func Terminal(status string) bool {
	return status == StatusComplete || status == StatusCancelled || status == StatusFailed
}

// Limits shared by the gateway (early refusal) and chat (the owner's own check).
const (
	MaxMessageChars    = 32000
	MaxTitleChars      = 200
	MaxSystemPrompt    = 8000
	MaxClientMessageID = 64
	DefaultPageSize    = 50
	MaxPageSize        = 200
)

// Chat is a conversation as clients see it.
type Chat struct {
	ID           string    `json:"id"`
	Title        string    `json:"title"`
	Model        string    `json:"model"`
	SystemPrompt string    `json:"system_prompt,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Usage is the token usage the provider reported for one answer.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Message is one chat message as clients see it.
type Message struct {
	ID         string     `json:"id"`
	ChatID     string     `json:"chat_id"`
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	Status     string     `json:"status"`
	Model      string     `json:"model,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Error      *Error     `json:"error,omitempty"`
	Usage      *Usage     `json:"usage,omitempty"`
}

// CreateChatRequest creates a chat for UserID (subject SubjectChatCreate).
type CreateChatRequest struct {
	UserID       string  `json:"user_id"`
	Model        string  `json:"model,omitempty"`
	Title        string  `json:"title,omitempty"`
	SystemPrompt *string `json:"system_prompt,omitempty"`
}

// ChatRef names one chat of one user (get, delete, regenerate, latest with ChatID empty).
type ChatRef struct {
	UserID string `json:"user_id"`
	ChatID string `json:"chat_id,omitempty"`
}

// ChatReply carries one chat.
type ChatReply struct {
	Chat Chat `json:"chat"`
}

// ListChatsRequest pages through a user's chats, newest activity first; Query searches
// titles and message text.
type ListChatsRequest struct {
	UserID string `json:"user_id"`
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
	Query  string `json:"q,omitempty"`
}

// ListChatsReply is one page of chats.
type ListChatsReply struct {
	Chats      []Chat `json:"chats"`
	NextCursor string `json:"next_cursor"`
}

// UpdateChatRequest changes a chat's title, model or system prompt (nil leaves it).
type UpdateChatRequest struct {
	UserID       string  `json:"user_id"`
	ChatID       string  `json:"chat_id"`
	Title        *string `json:"title,omitempty"`
	Model        *string `json:"model,omitempty"`
	SystemPrompt *string `json:"system_prompt,omitempty"`
}

// ListMessagesRequest pages backwards through a chat: the newest page first, Before is
// the cursor of the next older page.
type ListMessagesRequest struct {
	UserID string `json:"user_id"`
	ChatID string `json:"chat_id"`
	Limit  int    `json:"limit,omitempty"`
	Before string `json:"before,omitempty"`
}

// ListMessagesReply is one page of messages, oldest first within the page.
type ListMessagesReply struct {
	Messages   []Message `json:"messages"`
	NextCursor string    `json:"next_cursor"`
}

// SendMessageRequest adds a user message and asks for an answer.
type SendMessageRequest struct {
	UserID          string `json:"user_id"`
	ChatID          string `json:"chat_id"`
	Content         string `json:"content"`
	ClientMessageID string `json:"client_message_id,omitempty"`
}

// SendMessageReply holds the stored user message and the pending answer.
type SendMessageReply struct {
	UserMessage      Message `json:"user_message"`
	AssistantMessage Message `json:"assistant_message"`
}

// RegenerateReply holds the new pending answer that replaces the last one.
type RegenerateReply struct {
	AssistantMessage Message `json:"assistant_message"`
}

// MessageRef names one message of one user (get, cancel).
type MessageRef struct {
	UserID    string `json:"user_id"`
	MessageID string `json:"message_id"`
}

// MessageReply carries one message.
type MessageReply struct {
	Message Message `json:"message"`
}

// ConversationRequest asks chat for what the model must see to write one answer
// (inference only, subject SubjectConversationGet).
type ConversationRequest struct {
	MessageID string `json:"message_id"`
}

// Turn is one message as sent to a model.
type Turn struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ConversationReply is the chat's own history before the answer, oldest first: user
// messages and finished answers, nothing from any other chat.
type ConversationReply struct {
	ChatID       string `json:"chat_id"`
	UserID       string `json:"user_id"`
	Model        string `json:"model"`
	SystemPrompt string `json:"system_prompt,omitempty"`
	Status       string `json:"status"`
	Turns        []Turn `json:"turns"`
}

// StartMessageRequest tells chat a worker started (or restarted) writing an answer.
type StartMessageRequest struct {
	MessageID string `json:"message_id"`
	Attempt   int    `json:"attempt"`
	// AttemptID names this attempt (unique per start). Chat records it as the
	// answer's current attempt and refuses (CodeConflict) a completion that names
	// another one: a stale worker cannot overwrite the answer of the attempt that took
	// over from it. Empty (older workers): not recorded.
	AttemptID string `json:"attempt_id,omitempty"`
	// WithConversation asks for the conversation in the reply (StartMessageReply).
	WithConversation bool `json:"with_conversation,omitempty"`
}

// CompleteMessageRequest stores an answer's final state. It is idempotent: keyed by
// the message id, a completion of an already finished message changes nothing and
// returns the stored message.
type CompleteMessageRequest struct {
	MessageID string `json:"message_id"`
	Status    string `json:"status"`
	Content   string `json:"content"`
	Model     string `json:"model,omitempty"`
	Error     *Error `json:"error,omitempty"`
	Usage     *Usage `json:"usage,omitempty"`
	// AttemptID, when set, is the attempt (StartMessageRequest.AttemptID) that wrote
	// this completion: chat refuses it with CodeConflict when another attempt has
	// started the answer since. Empty: accepted whichever attempt is current (chat's
	// own completions, the reaper, older workers).
	AttemptID string `json:"attempt_id,omitempty"`
	// ChatID, when set, is the answer's chat (ConversationReply.ChatID): chat then
	// locks it without looking it up first. A wrong one is ignored.
	ChatID string `json:"chat_id,omitempty"`
}
