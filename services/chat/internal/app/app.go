// Package app holds the chat service's use cases: chats, messages, the life of an
// answer and the ownership rules. It knows nothing of NATS, HTTP or SQL: storage,
// the model catalogue and event publishing are interfaces implemented elsewhere.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/parley-chat/parley/libs/events"
)

// Errors the use cases return; transport maps each to a client-visible code.
var (
	// ErrNotFound means the resource does not exist or belongs to someone else.
	ErrNotFound = errors.New("not found")
	// ErrUnauthenticated means the request carried no well-formed user id.
	ErrUnauthenticated = errors.New("no user")
	// ErrNoChats means the user has no chat at all (latest).
	ErrNoChats = errors.New("no chats")
	// ErrGenerationInProgress means an answer of the chat is still pending or streaming.
	ErrGenerationInProgress = errors.New("generation in progress")
	// ErrNotRunning means the answer is already in a terminal state.
	ErrNotRunning = errors.New("not running")
	// ErrNothingToRegenerate means the chat does not end with a finished answer.
	ErrNothingToRegenerate = errors.New("nothing to regenerate")
	// ErrUnavailable means a dependency (the model catalogue) cannot be reached.
	ErrUnavailable = errors.New("unavailable")
	// ErrConflict is returned by the store when a unique key refuses a row.
	ErrConflict = errors.New("conflict")
	// ErrStaleAttempt refuses a completion from an attempt that is no longer the
	// answer's current one (another worker took the answer over).
	ErrStaleAttempt = errors.New("stale attempt")
)

// InvalidInputError is a request the user must correct; Msg says what is wrong.
type InvalidInputError struct{ Msg string }

func (e *InvalidInputError) Error() string { return "invalid input: " + e.Msg }

func invalid(format string, args ...any) error {
	return &InvalidInputError{Msg: fmt.Sprintf(format, args...)}
}

// UnknownModelError names a model no inference worker serves.
type UnknownModelError struct{ Model string }

func (e *UnknownModelError) Error() string { return "unknown model " + e.Model }

// Chat is a stored chat.
type Chat struct {
	ID               string
	UserID           string
	Title            string
	TitleProvisional bool
	// TitleDueAt, when set, says a generated title is wanted from then on (the
	// titler's lease and retry time); TitleAttempts counts the tries so far.
	TitleDueAt    *time.Time
	TitleAttempts int
	Model         string
	SystemPrompt  string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Message is a stored message. Seq orders the messages of a chat.
type Message struct {
	Seq             int64
	ID              string
	ChatID          string
	UserID          string
	Role            string
	Content         string
	Status          string
	Model           string
	ClientMessageID string
	ReplyTo         string
	ErrorCode       string
	ErrorMessage    string
	Usage           *events.Usage
	CreatedAt       time.Time
	FinishedAt      *time.Time
	// CancelRequestedAt is set when a cancel arrived while a worker was writing.
	CancelRequestedAt *time.Time
	// AttemptID is the worker attempt that last started the answer ("" if none named
	// itself).
	AttemptID string
}

// ChatQuery selects one page of a user's chats, newest activity first.
type ChatQuery struct {
	Limit int
	// After, when set, starts the page after this position.
	After *ChatCursor
	// Terms are search words; a chat matches when its title or one of its messages
	// contains every term (as a word prefix).
	Terms []string
}

// ChatCursor is a position in the newest-first chat order.
type ChatCursor struct {
	UpdatedAt time.Time
	ID        string
}

// Store is the chat service's storage. Reads outside a transaction see committed data.
type Store interface {
	// InTx runs fn in one transaction, committed when fn returns nil.
	InTx(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	CreateChat(ctx context.Context, c Chat) error
	// ChatByID returns a chat whoever owns it (ErrNotFound when missing).
	ChatByID(ctx context.Context, chatID string) (Chat, error)
	// LatestChat returns the user's chat with the newest activity.
	LatestChat(ctx context.Context, userID string) (Chat, error)
	// ListChats returns up to q.Limit chats. A search may stop early to bound its
	// work: then resume is the position to go on from (nil when the result is
	// complete up to q.Limit).
	ListChats(ctx context.Context, userID string, q ChatQuery) (chats []Chat, resume *ChatCursor, err error)
	// Messages returns up to limit messages of a chat with seq < beforeSeq (0: no
	// bound), newest first.
	Messages(ctx context.Context, chatID string, beforeSeq int64, limit int) ([]Message, error)
	// History returns the messages of a chat with seq < beforeSeq, oldest first.
	History(ctx context.Context, chatID string, beforeSeq int64) ([]Message, error)
	MessageByID(ctx context.Context, messageID string) (Message, error)
	// StartPending marks a pending answer (with no cancel requested) streaming and
	// records attemptID, in one statement; false when the answer is not such.
	StartPending(ctx context.Context, messageID, attemptID string) (bool, error)
	// Thread returns a message's chat, and the message with the messages of its chat
	// before it, oldest first (the message last), in one query; ErrNotFound when it
	// does not exist.
	Thread(ctx context.Context, messageID string) (Chat, []Message, error)
	// MessageByClientID finds a user's message by its client_message_id.
	MessageByClientID(ctx context.Context, userID, clientID string) (Message, error)
	// AnswerTo returns the newest assistant message replying to a user message.
	AnswerTo(ctx context.Context, userMessageID string) (Message, error)
	// Abandoned lists answers still pending or streaming that were created before t.
	Abandoned(ctx context.Context, before time.Time, limit int) ([]string, error)
	TitleStore
}

// Tx is the set of operations available inside a transaction.
type Tx interface {
	// LockChat reads a chat with SELECT ... FOR UPDATE.
	LockChat(ctx context.Context, chatID string) (Chat, error)
	// LockMessage locks the message's chat, then the message (always in that order,
	// so that every transaction takes locks chat first and cannot deadlock).
	LockMessage(ctx context.Context, messageID string) (Message, Chat, error)
	// LockMessageIn is LockMessage when the message's chat is known: ErrNotFound when
	// the message is not in that chat.
	LockMessageIn(ctx context.Context, chatID, messageID string) (Message, Chat, error)
	MessageByClientID(ctx context.Context, userID, clientID string) (Message, error)
	AnswerTo(ctx context.Context, userMessageID string) (Message, error)
	// LastMessage returns the chat's message with the highest seq.
	LastMessage(ctx context.Context, chatID string) (Message, error)
	// RunningAnswers lists the ids of the chat's pending or streaming answers.
	RunningAnswers(ctx context.Context, chatID string) ([]string, error)
	// HasMessages reports whether the chat holds any message.
	HasMessages(ctx context.Context, chatID string) (bool, error)
	// ChatActivity reports, in one query, whether the chat holds any message and
	// whether one of its answers is pending or streaming.
	ChatActivity(ctx context.Context, chatID string) (hasMessages, running bool, err error)
	// InsertMessage stores m and sets m.Seq.
	InsertMessage(ctx context.Context, m *Message) error
	// InsertMessages stores ms with one statement, their seqs increasing in that
	// order; it does not set Seq.
	InsertMessages(ctx context.Context, ms ...*Message) error
	UpdateMessage(ctx context.Context, m Message) error
	DeleteMessage(ctx context.Context, messageID string) error
	UpdateChat(ctx context.Context, c Chat) error
	// DeleteChat removes a chat and all its messages.
	DeleteChat(ctx context.Context, chatID string) error
	// AddEvent writes an outbox row, published after commit by the relay.
	AddEvent(ctx context.Context, ev events.Event) error
}

// TitleJob is a chat that wants a generated title, claimed by one titler.
type TitleJob struct {
	ChatID string
	// Attempt is this try's number, from 1.
	Attempt int
}

// TitleStore holds the titler's queries (the chats table is the queue).
type TitleStore interface {
	// ClaimTitleJobs leases up to limit chats whose title is due at or before now until
	// leaseUntil, counting an attempt for each; chats leased by another titler are
	// skipped.
	ClaimTitleJobs(ctx context.Context, now, leaseUntil time.Time, limit int) ([]TitleJob, error)
	// FirstExchange returns the chat's first finished answer and the user message it
	// answers (ErrNotFound when there is none).
	FirstExchange(ctx context.Context, chatID string) (question, answer Message, err error)
}

// Titler asks the chat's model for a title (inference.v1.title.generate). An empty
// title means the model does not write titles.
type Titler interface {
	GenerateTitle(ctx context.Context, req events.TitleRequest) (string, error)
}

// Models lists the models the inference workers serve, the default first.
type Models interface {
	Models(ctx context.Context) ([]events.Model, error)
}

// Notifier publishes what chat must tell the workers and the clients directly.
type Notifier interface {
	// PublishGeneration publishes a terminal generation event of an answer.
	PublishGeneration(ctx context.Context, messageID string, ev events.GenerationEvent) error
	// BroadcastCancel asks the worker holding an answer to stop.
	BroadcastCancel(ctx context.Context, messageID string) error
}

// Config tunes the use cases.
type Config struct {
	// DefaultModel is used for new chats when the model catalogue is unreachable.
	DefaultModel string
	// GenerationTimeout is how long an answer may stay pending or streaming before the
	// reaper fails it.
	GenerationTimeout time.Duration
	// ConversationMaxBytes bounds the text of a conversation sent to a worker; the
	// oldest turns are dropped first. 0 means 512 KiB.
	ConversationMaxBytes int
}

// Service implements the chat use cases.
type Service struct {
	cfg    Config
	store  Store
	models Models
	notify Notifier
	log    *slog.Logger
	now    func() time.Time
	// titleWake receives a value when an answer made a title due.
	titleWake chan struct{}
}

// New returns a Service.
func New(cfg Config, store Store, models Models, notify Notifier, log *slog.Logger) *Service {
	if cfg.GenerationTimeout <= 0 {
		cfg.GenerationTimeout = 15 * time.Minute
	}
	if cfg.ConversationMaxBytes <= 0 {
		cfg.ConversationMaxBytes = 512 << 10
	}
	return &Service{
		cfg: cfg, store: store, models: models, notify: notify, log: log,
		now:       func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		titleWake: make(chan struct{}, 1),
	}
}

// eventSource is the envelope source of every event chat emits.
const eventSource = "chat"

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// later returns the later of t and now, so that activity never goes backwards when
// replicas' clocks disagree slightly.
func later(t, now time.Time) time.Time {
	if t.After(now) {
		return t
	}
	return now
}

func addEvent(ctx context.Context, tx Tx, typ string, at time.Time, data any) error {
	ev, err := events.NewEvent(newID(), typ, eventSource, at, data)
	if err != nil {
		return err
	}
	if err := tx.AddEvent(ctx, ev); err != nil {
		return fmt.Errorf("add %s event: %w", typ, err)
	}
	return nil
}

// Public is the message as clients see it.
func (m Message) Public() events.Message {
	out := events.Message{
		ID: m.ID, ChatID: m.ChatID, Role: m.Role, Content: m.Content, Status: m.Status,
		Model: m.Model, CreatedAt: m.CreatedAt, FinishedAt: m.FinishedAt, Usage: m.Usage,
	}
	if m.ErrorCode != "" {
		out.Error = &events.Error{Code: m.ErrorCode, Message: m.ErrorMessage}
	}
	return out
}

// Public is the chat as clients see it.
func (c Chat) Public() events.Chat {
	return events.Chat{
		ID: c.ID, Title: c.Title, Model: c.Model, SystemPrompt: c.SystemPrompt,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
}
