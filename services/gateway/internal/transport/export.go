package transport

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/libs/events"
)

// maxExportPages bounds an export (pages of events.MaxPageSize messages).
const maxExportPages = 250

// exportDoc is the JSON export of one chat.
type exportDoc struct {
	Chat       events.Chat      `json:"chat"`
	Messages   []events.Message `json:"messages"`
	ExportedAt time.Time        `json:"exported_at"`
}

// exportChat answers a chat and all its messages as a file download, built from the
// chat service's ordinary get and list calls.
func (s *Server) exportChat(w http.ResponseWriter, r *http.Request) error {
	format := r.URL.Query().Get("format")
	switch format {
	case "":
		format = "markdown"
	case "markdown", "md", "json":
	default:
		return events.Errorf(events.CodeInvalidInput, "format: must be markdown or json.")
	}
	c, err := s.ownedChat(r)
	if err != nil {
		return err
	}
	msgs, err := s.allMessages(r, c.ID)
	if err != nil {
		return err
	}
	doc := exportDoc{Chat: c, Messages: msgs, ExportedAt: time.Now().UTC().Truncate(time.Second)}

	var body []byte
	var contentType, ext string
	if format == "json" {
		body, err = json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return fmt.Errorf("encode export: %w", err)
		}
		body = append(body, '\n')
		contentType, ext = "application/json; charset=utf-8", "json"
	} else {
		body = []byte(markdown(doc))
		contentType, ext = "text/markdown; charset=utf-8", "md"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, exportName(c), ext))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// allMessages pages backwards through a chat and returns its messages oldest first.
func (s *Server) allMessages(r *http.Request, chatID string) ([]events.Message, error) {
	p := mustPrincipal(r)
	var pages [][]events.Message
	before := ""
	for range maxExportPages {
		rep, err := call[events.ListMessagesRequest, events.ListMessagesReply](r.Context(), s.nc, s.opts.ChatTimeout, events.SubjectMessageList,
			events.ListMessagesRequest{UserID: p.UserID, ChatID: chatID, Limit: events.MaxPageSize, Before: before})
		if err != nil {
			return nil, err
		}
		pages = append(pages, rep.Messages)
		if rep.NextCursor == "" || rep.NextCursor == before || len(rep.Messages) == 0 {
			break
		}
		before = rep.NextCursor
	}
	slices.Reverse(pages)
	out := []events.Message{}
	for _, pg := range pages {
		out = append(out, pg...)
	}
	return out, nil
}

// markdown renders an export as a Markdown document.
func markdown(d exportDoc) string {
	var b strings.Builder
	title := strings.TrimSpace(d.Chat.Title)
	if title == "" {
		title = "Untitled chat"
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	fmt.Fprintf(&b, "- Model: %s\n- Created: %s\n- Exported: %s\n", d.Chat.Model,
		d.Chat.CreatedAt.UTC().Format(time.RFC3339), d.ExportedAt.Format(time.RFC3339))
	for _, m := range d.Messages {
		who := "You"
		if m.Role == events.RoleAssistant {
			who = "Assistant"
			if m.Model != "" {
				who += " (" + m.Model + ")"
			}
		}
		fmt.Fprintf(&b, "\n---\n\n### %s · %s\n\n", who, m.CreatedAt.UTC().Format(time.RFC3339))
		switch m.Status {
		case events.StatusComplete:
		case events.StatusFailed:
			reason := "the answer failed"
			if m.Error != nil && m.Error.Message != "" {
				reason = "the answer failed: " + m.Error.Message
			}
			fmt.Fprintf(&b, "_(%s)_\n\n", reason)
		default:
			fmt.Fprintf(&b, "_(%s)_\n\n", m.Status)
		}
		if m.Content != "" {
			b.WriteString(m.Content)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// exportName is a safe ASCII file name for a chat export.
func exportName(c events.Chat) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(c.Title) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 48 {
			break
		}
	}
	slug := strings.Trim(b.String(), "-")
	if slug == "" {
		return "parley-chat-" + c.ID
	}
	return "parley-" + slug
}
