package transport

import (
	"encoding/json"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/libs/events"
)

type createChatBody struct {
	Model        string  `json:"model"`
	Title        string  `json:"title"`
	SystemPrompt *string `json:"system_prompt"`
}

type updateChatBody struct {
	Title        *string `json:"title"`
	Model        *string `json:"model"`
	SystemPrompt *string `json:"system_prompt"`
}

type sendBody struct {
	Content         string `json:"content"`
	ClientMessageID string `json:"client_message_id"`
}

// chatID returns the {chatID} path parameter, or not_found for anything that cannot
// be one of our ids (so it never reaches a service).
func chatID(r *http.Request) (string, error) {
	id := chi.URLParam(r, "chatID")
	if !validID(id) {
		return "", events.ErrNotFound
	}
	return id, nil
}

func messageID(r *http.Request) (string, error) {
	id := chi.URLParam(r, "messageID")
	if !validID(id) {
		return "", events.ErrNotFound
	}
	return id, nil
}

func checkChatFields(title, model, systemPrompt *string) error {
	if title != nil {
		if err := checkLen("title", *title, events.MaxTitleChars); err != nil {
			return err
		}
	}
	if model != nil {
		if err := checkLen("model", *model, maxModelLen); err != nil {
			return err
		}
	}
	if systemPrompt != nil {
		if err := checkLen("system_prompt", *systemPrompt, events.MaxSystemPrompt); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) createChat(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	var b createChatBody
	if err := decode(r, &b, true); err != nil {
		return err
	}
	if err := checkChatFields(&b.Title, &b.Model, b.SystemPrompt); err != nil {
		return err
	}
	rep, err := call[events.CreateChatRequest, events.ChatReply](r.Context(), s.nc, s.opts.ChatTimeout, events.SubjectChatCreate,
		events.CreateChatRequest{UserID: p.UserID, Model: b.Model, Title: b.Title, SystemPrompt: b.SystemPrompt})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, rep)
	return nil
}

func (s *Server) listChats(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	cursor, err := queryParam(r, "cursor", maxCursorLen)
	if err != nil {
		return err
	}
	q, err := queryParam(r, "q", maxQueryLen)
	if err != nil {
		return err
	}
	rep, err := call[events.ListChatsRequest, events.ListChatsReply](r.Context(), s.nc, s.opts.ChatTimeout, events.SubjectChatList,
		events.ListChatsRequest{UserID: p.UserID, Limit: limit, Cursor: cursor, Query: q})
	if err != nil {
		return err
	}
	if rep.Chats == nil {
		rep.Chats = []events.Chat{}
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) latestChat(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	rep, err := call[events.ChatRef, events.ChatReply](r.Context(), s.nc, s.opts.ChatTimeout, events.SubjectChatLatest,
		events.ChatRef{UserID: p.UserID})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// ownedChat asks chat for one of the caller's chats; another user's chat is not_found.
func (s *Server) ownedChat(r *http.Request) (events.Chat, error) {
	id, err := chatID(r)
	if err != nil {
		return events.Chat{}, err
	}
	rep, err := call[events.ChatRef, events.ChatReply](r.Context(), s.nc, s.opts.ChatTimeout, events.SubjectChatGet,
		events.ChatRef{UserID: mustPrincipal(r).UserID, ChatID: id})
	if err != nil {
		return events.Chat{}, err
	}
	return rep.Chat, nil
}

func (s *Server) getChat(w http.ResponseWriter, r *http.Request) error {
	c, err := s.ownedChat(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, events.ChatReply{Chat: c})
	return nil
}

func (s *Server) updateChat(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	id, err := chatID(r)
	if err != nil {
		return err
	}
	var b updateChatBody
	if err := decode(r, &b, false); err != nil {
		return err
	}
	if err := checkChatFields(b.Title, b.Model, b.SystemPrompt); err != nil {
		return err
	}
	rep, err := call[events.UpdateChatRequest, events.ChatReply](r.Context(), s.nc, s.opts.ChatTimeout, events.SubjectChatUpdate,
		events.UpdateChatRequest{UserID: p.UserID, ChatID: id, Title: b.Title, Model: b.Model, SystemPrompt: b.SystemPrompt})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) deleteChat(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	id, err := chatID(r)
	if err != nil {
		return err
	}
	if _, err := call[events.ChatRef, json.RawMessage](r.Context(), s.nc, s.opts.ChatTimeout, events.SubjectChatDelete,
		events.ChatRef{UserID: p.UserID, ChatID: id}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	id, err := chatID(r)
	if err != nil {
		return err
	}
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	before, err := queryParam(r, "before", maxCursorLen)
	if err != nil {
		return err
	}
	rep, err := call[events.ListMessagesRequest, events.ListMessagesReply](r.Context(), s.nc, s.opts.ChatTimeout, events.SubjectMessageList,
		events.ListMessagesRequest{UserID: p.UserID, ChatID: id, Limit: limit, Before: before})
	if err != nil {
		return err
	}
	if rep.Messages == nil {
		rep.Messages = []events.Message{}
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	id, err := chatID(r)
	if err != nil {
		return err
	}
	var b sendBody
	if err := decode(r, &b, false); err != nil {
		return err
	}
	if err := checkContent(b.Content); err != nil {
		return err
	}
	if len(b.ClientMessageID) > events.MaxClientMessageID {
		return events.Errorf(events.CodeInvalidInput, "client_message_id: at most %d characters.", events.MaxClientMessageID)
	}
	rep, err := call[events.SendMessageRequest, events.SendMessageReply](r.Context(), s.nc, s.opts.SendTimeout, events.SubjectMessageSend,
		events.SendMessageRequest{UserID: p.UserID, ChatID: id, Content: b.Content, ClientMessageID: b.ClientMessageID})
	if err != nil {
		return err
	}
	s.sent.add(p.UserID, rep.AssistantMessage)
	writeJSON(w, http.StatusAccepted, rep)
	return nil
}

func (s *Server) regenerate(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	id, err := chatID(r)
	if err != nil {
		return err
	}
	rep, err := call[events.ChatRef, events.RegenerateReply](r.Context(), s.nc, s.opts.SendTimeout, events.SubjectChatRegenerate,
		events.ChatRef{UserID: p.UserID, ChatID: id})
	if err != nil {
		return err
	}
	s.sent.add(p.UserID, rep.AssistantMessage)
	writeJSON(w, http.StatusAccepted, rep)
	return nil
}

func (s *Server) cancelMessage(w http.ResponseWriter, r *http.Request) error {
	p := mustPrincipal(r)
	id, err := messageID(r)
	if err != nil {
		return err
	}
	rep, err := call[events.MessageRef, events.MessageReply](r.Context(), s.nc, s.opts.ChatTimeout, events.SubjectMessageCancel,
		events.MessageRef{UserID: p.UserID, MessageID: id})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, rep)
	return nil
}
