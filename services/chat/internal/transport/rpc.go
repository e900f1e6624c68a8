// Package transport connects the chat use cases to NATS: the micro endpoints of every
// chat.v1 subject, the model catalogue client, the notifier for generation events and
// cancels, and the outbox relay that publishes to JetStream.
package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/libs/events/authtoken"
	"github.com/parley-chat/parley/libs/ops"
	"github.com/parley-chat/parley/services/chat/internal/app"
)

// serviceVersion is the micro service version.
const serviceVersion = "1.0.0"

// maxInFlight bounds the requests handled at once; beyond it the subscription waits.
const maxInFlight = 128

// Server is the chat micro service.
type Server struct {
	svc      micro.Service
	app      *app.Service
	keys     *authtoken.Keyring
	revs     *authtoken.Revocations
	log      *slog.Logger
	sem      chan struct{}
	inflight sync.WaitGroup
}

// Serve registers the chat endpoints on nc. Each request is handled on its own
// goroutine (micro delivers one subscription's messages one at a time), bounded by
// maxInFlight, and measured by metrics (which may be nil). The user-facing endpoints
// act only for the user named by the access token the gateway forwards, verified with
// keys and not revoked in revs (see asUser); the worker-side ones (conversation, start, complete) carry no
// user and are guarded by NATS permissions.
func Serve(nc *nats.Conn, a *app.Service, keys *authtoken.Keyring, revs *authtoken.Revocations, log *slog.Logger, timeout time.Duration, metrics *ops.RPCMetrics) (*Server, error) {
	s := &Server{app: a, keys: keys, revs: revs, log: log, sem: make(chan struct{}, maxInFlight)}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        events.ChatService,
		Version:     serviceVersion,
		Description: "Chats, messages and the life of answers",
	})
	if err != nil {
		return nil, fmt.Errorf("add micro service: %w", err)
	}
	s.svc = svc
	endpoints := []struct {
		name, subject string
		h             micro.Handler
	}{
		{"chat-create", events.SubjectChatCreate, events.Handle(log, timeout, asUser(s, createUser, s.createChat))},
		{"chat-get", events.SubjectChatGet, events.Handle(log, timeout, asUser(s, chatRefUser, s.getChat))},
		{"chat-latest", events.SubjectChatLatest, events.Handle(log, timeout, asUser(s, chatRefUser, s.latestChat))},
		{"chat-list", events.SubjectChatList, events.Handle(log, timeout, asUser(s, listChatsUser, s.listChats))},
		{"chat-update", events.SubjectChatUpdate, events.Handle(log, timeout, asUser(s, updateUser, s.updateChat))},
		{"chat-delete", events.SubjectChatDelete, events.Handle(log, timeout, asUser(s, chatRefUser, s.deleteChat))},
		{"chat-regenerate", events.SubjectChatRegenerate, events.Handle(log, timeout, asUser(s, chatRefUser, s.regenerate))},
		{"message-list", events.SubjectMessageList, events.Handle(log, timeout, asUser(s, listMessagesUser, s.listMessages))},
		{"message-send", events.SubjectMessageSend, events.Handle(log, timeout, asUser(s, sendUser, s.send))},
		{"message-get", events.SubjectMessageGet, events.Handle(log, timeout, asUser(s, messageRefUser, s.getMessage))},
		{"message-cancel", events.SubjectMessageCancel, events.Handle(log, timeout, asUser(s, messageRefUser, s.cancel))},
		// Worker-side: no user, no token (NATS permissions keep the gateway out).
		{"conversation-get", events.SubjectConversationGet, events.Handle(log, timeout, s.conversation)},
		{"message-start", events.SubjectMessageStart, events.Handle(log, timeout, s.start)},
		{"message-complete", events.SubjectMessageComplete, events.Handle(log, timeout, s.complete)},
	}
	for _, e := range endpoints {
		if err := svc.AddEndpoint(e.name, s.concurrent(metrics.Wrap(e.name, e.h)), micro.WithEndpointSubject(e.subject)); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("add endpoint %s: %w", e.subject, err)
		}
	}
	return s, nil
}

// asUser makes fn act only for the user the forwarded access token names (see
// authtoken.Keyring.Caller: the payload's user id, user gives its address, is set to
// the token's subject; a missing, bad or mismatched token is unauthenticated; no keys
// from auth yet is unavailable), and only while its session is not revoked (the
// revocation bucket auth writes on logout: a logged-out token is refused here too, not
// only at the gateway; not loaded yet is unavailable). A token verified before costs a
// hash and two look-ups.
func asUser[Req, Rep any](s *Server, user func(*Req) *string, fn events.HandlerFunc[Req, Rep]) events.HandlerFunc[Req, Rep] {
	return func(ctx context.Context, req Req) (Rep, error) {
		var zero Rep
		id, err := s.keys.Caller(ctx, user(&req))
		switch {
		case err != nil:
			return zero, err
		case !s.revs.Ready():
			return zero, events.ErrUnavailable
		case s.revs.Revoked(id):
			s.log.WarnContext(ctx, "user request refused: the token's session was revoked", "user_id", id.UserID)
			return zero, events.ErrUnauthenticated
		}
		return fn(ctx, req)
	}
}

// Where each user-facing payload keeps its user id.
func createUser(r *events.CreateChatRequest) *string         { return &r.UserID }
func chatRefUser(r *events.ChatRef) *string                  { return &r.UserID }
func listChatsUser(r *events.ListChatsRequest) *string       { return &r.UserID }
func updateUser(r *events.UpdateChatRequest) *string         { return &r.UserID }
func listMessagesUser(r *events.ListMessagesRequest) *string { return &r.UserID }
func sendUser(r *events.SendMessageRequest) *string          { return &r.UserID }
func messageRefUser(r *events.MessageRef) *string            { return &r.UserID }

func (s *Server) concurrent(h micro.Handler) micro.Handler {
	return micro.HandlerFunc(func(r micro.Request) {
		s.sem <- struct{}{}
		s.inflight.Add(1)
		go func() {
			defer func() {
				<-s.sem
				s.inflight.Done()
			}()
			h.Handle(r)
		}()
	})
}

// Stop stops taking requests and waits for those in flight (or ctx).
func (s *Server) Stop(ctx context.Context) error {
	err := s.svc.Stop()
	done := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return errors.Join(err, fmt.Errorf("wait for requests in flight: %w", ctx.Err()))
	}
	if err != nil {
		return fmt.Errorf("stop micro service: %w", err)
	}
	return nil
}

// clientError maps app errors to the errors clients see; anything else is returned
// as is, logged by events.Handle and sent as a generic internal error.
func clientError(err error) error {
	var inv *app.InvalidInputError
	var um *app.UnknownModelError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inv):
		return events.Errorf(events.CodeInvalidInput, "%s", inv.Msg)
	case errors.As(err, &um):
		return events.Errorf(events.CodeUnknownModel, "The model %q is not available.", um.Model)
	case errors.Is(err, app.ErrNotFound):
		return events.ErrNotFound
	case errors.Is(err, app.ErrUnauthenticated):
		return events.ErrUnauthenticated
	case errors.Is(err, app.ErrNoChats):
		return events.Errorf(events.CodeNoChats, "You have no chats yet.")
	case errors.Is(err, app.ErrGenerationInProgress):
		return events.Errorf(events.CodeGenerationInProgress, "An answer is still being written in this chat. Wait for it to finish or cancel it.")
	case errors.Is(err, app.ErrNotRunning):
		return events.Errorf(events.CodeNotRunning, "This answer is not being written any more.")
	case errors.Is(err, app.ErrNothingToRegenerate):
		return events.Errorf(events.CodeConflict, "There is no finished answer to regenerate: the chat must end with an answer.")
	case errors.Is(err, app.ErrStaleAttempt):
		return events.Errorf(events.CodeConflict, "Another attempt is writing this answer now.")
	case errors.Is(err, app.ErrConflict):
		return events.Errorf(events.CodeConflict, "This change conflicts with another one. Please try again.")
	case errors.Is(err, app.ErrUnavailable):
		return events.ErrUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return events.ErrTimeout
	}
	return err
}

func messages(ms []app.Message) []events.Message {
	out := make([]events.Message, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Public())
	}
	return out
}

func chats(cs []app.Chat) []events.Chat {
	out := make([]events.Chat, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Public())
	}
	return out
}

func (s *Server) createChat(ctx context.Context, req events.CreateChatRequest) (events.ChatReply, error) {
	in := app.CreateChatInput{UserID: req.UserID, Model: req.Model, Title: req.Title}
	if req.SystemPrompt != nil {
		in.SystemPrompt = *req.SystemPrompt
	}
	c, err := s.app.CreateChat(ctx, in)
	return events.ChatReply{Chat: c.Public()}, clientError(err)
}

func (s *Server) getChat(ctx context.Context, req events.ChatRef) (events.ChatReply, error) {
	c, err := s.app.Chat(ctx, req.UserID, req.ChatID)
	return events.ChatReply{Chat: c.Public()}, clientError(err)
}

func (s *Server) latestChat(ctx context.Context, req events.ChatRef) (events.ChatReply, error) {
	c, err := s.app.LatestChat(ctx, req.UserID)
	return events.ChatReply{Chat: c.Public()}, clientError(err)
}

func (s *Server) listChats(ctx context.Context, req events.ListChatsRequest) (events.ListChatsReply, error) {
	cs, next, err := s.app.ListChats(ctx, app.ListChatsInput{UserID: req.UserID, Limit: req.Limit, Cursor: req.Cursor, Query: req.Query})
	return events.ListChatsReply{Chats: chats(cs), NextCursor: next}, clientError(err)
}

func (s *Server) updateChat(ctx context.Context, req events.UpdateChatRequest) (events.ChatReply, error) {
	c, err := s.app.UpdateChat(ctx, app.UpdateChatInput{
		UserID: req.UserID, ChatID: req.ChatID, Title: req.Title, Model: req.Model, SystemPrompt: req.SystemPrompt,
	})
	return events.ChatReply{Chat: c.Public()}, clientError(err)
}

func (s *Server) deleteChat(ctx context.Context, req events.ChatRef) (events.Empty, error) {
	return events.Empty{}, clientError(s.app.DeleteChat(ctx, req.UserID, req.ChatID))
}

func (s *Server) regenerate(ctx context.Context, req events.ChatRef) (events.RegenerateReply, error) {
	m, err := s.app.Regenerate(ctx, req.UserID, req.ChatID)
	return events.RegenerateReply{AssistantMessage: m.Public()}, clientError(err)
}

func (s *Server) listMessages(ctx context.Context, req events.ListMessagesRequest) (events.ListMessagesReply, error) {
	ms, next, err := s.app.ListMessages(ctx, req.UserID, req.ChatID, req.Limit, req.Before)
	return events.ListMessagesReply{Messages: messages(ms), NextCursor: next}, clientError(err)
}

func (s *Server) send(ctx context.Context, req events.SendMessageRequest) (events.SendMessageReply, error) {
	u, a, err := s.app.Send(ctx, app.SendInput{UserID: req.UserID, ChatID: req.ChatID, Content: req.Content, ClientMessageID: req.ClientMessageID})
	return events.SendMessageReply{UserMessage: u.Public(), AssistantMessage: a.Public()}, clientError(err)
}

func (s *Server) getMessage(ctx context.Context, req events.MessageRef) (events.MessageReply, error) {
	m, err := s.app.Message(ctx, req.UserID, req.MessageID)
	return events.MessageReply{Message: m.Public()}, clientError(err)
}

func (s *Server) cancel(ctx context.Context, req events.MessageRef) (events.MessageReply, error) {
	m, err := s.app.Cancel(ctx, req.UserID, req.MessageID)
	return events.MessageReply{Message: m.Public()}, clientError(err)
}

func (s *Server) conversation(ctx context.Context, req events.ConversationRequest) (events.ConversationReply, error) {
	c, err := s.app.Conversation(ctx, req.MessageID)
	if err != nil {
		return events.ConversationReply{}, clientError(err)
	}
	return conversationReply(c), nil
}

func conversationReply(c app.Conversation) events.ConversationReply {
	// The answer carries the chat's model as it was when the answer was asked for; a
	// model changed since applies to the next answer.
	model := c.Answer.Model
	if model == "" {
		model = c.Chat.Model
	}
	return events.ConversationReply{
		ChatID: c.Chat.ID, UserID: c.Chat.UserID, Model: model, SystemPrompt: c.Chat.SystemPrompt,
		Status: c.Answer.Status, Turns: c.Turns,
	}
}

func (s *Server) start(ctx context.Context, req events.StartMessageRequest) (events.StartMessageReply, error) {
	st, err := s.app.Start(ctx, app.StartInput{MessageID: req.MessageID, AttemptID: req.AttemptID, WithConversation: req.WithConversation})
	if err != nil {
		return events.StartMessageReply{}, clientError(err)
	}
	s.log.Debug("answer started", "message_id", st.Message.ID, "attempt", req.Attempt, "attempt_id", req.AttemptID,
		"first_start", st.FirstStart, "request_id", events.RequestID(ctx))
	rep := events.StartMessageReply{Message: st.Message.Public(), FirstStart: st.FirstStart}
	if st.Conversation != nil {
		conv := conversationReply(*st.Conversation)
		rep.Conversation = &conv
	}
	return rep, nil
}

func (s *Server) complete(ctx context.Context, req events.CompleteMessageRequest) (events.MessageReply, error) {
	m, _, err := s.app.Complete(ctx, req.MessageID, app.Completion{
		Status: req.Status, Content: req.Content, Model: req.Model, Error: req.Error, Usage: req.Usage, AttemptID: req.AttemptID,
		ChatID: req.ChatID,
	})
	if errors.Is(err, app.ErrStaleAttempt) {
		s.log.Info("completion of a stale attempt refused", "message_id", req.MessageID, "attempt_id", req.AttemptID,
			"request_id", events.RequestID(ctx))
	}
	return events.MessageReply{Message: m.Public()}, clientError(err)
}
