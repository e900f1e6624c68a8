package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go/micro"

	"github.com/parley-chat/parley/libs/events"
	"github.com/parley-chat/parley/services/inference/internal/app"
)

// maxTitlesInFlight bounds the title requests one worker serves at a time; beyond it a
// request is refused at once as unavailable (chat tries again later) rather than
// queued behind slow models.
const maxTitlesInFlight = 4

// ServeTitles adds the inference.v1.title.generate endpoint to svc and serves it until
// ctx is done; then it cancels the titles being written, waits for them, and returns.
// Each request runs on its own goroutine, at most maxTitlesInFlight at a time.
func ServeTitles(ctx context.Context, svc micro.Service, w *app.TitleWriter, log *slog.Logger) error {
	sem := make(chan struct{}, maxTitlesInFlight)
	var wg sync.WaitGroup
	handler := micro.HandlerFunc(func(r micro.Request) {
		if ctx.Err() != nil {
			respondTitleError(r, events.ErrUnavailable)
			return
		}
		select {
		case sem <- struct{}{}:
		default:
			respondTitleError(r, events.Errorf(events.CodeUnavailable, "Every title slot of this worker is busy."))
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			serveTitle(ctx, r, w, log)
		})
	})
	if err := svc.AddEndpoint("title-generate", handler, micro.WithEndpointSubject(events.SubjectTitleGenerate)); err != nil {
		return fmt.Errorf("add endpoint %s: %w", events.SubjectTitleGenerate, err)
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

func serveTitle(ctx context.Context, r micro.Request, w *app.TitleWriter, log *slog.Logger) {
	reqID := r.Headers().Get(events.HeaderRequestID)
	if reqID != "" {
		ctx = events.WithRequestID(ctx, reqID)
	}
	var req events.TitleRequest
	if err := json.Unmarshal(r.Data(), &req); err != nil {
		respondTitleError(r, &events.Error{Code: events.CodeInvalidJSON, Message: "The request could not be read."})
		return
	}
	title, model, err := w.Title(ctx, req)
	if err != nil {
		var e *events.Error
		if !errors.As(err, &e) {
			log.Error("title failed", "chat_id", req.ChatID, "request_id", reqID, "err", err)
		} else {
			log.Info("no title", "chat_id", req.ChatID, "model", model, "code", e.Code, "request_id", reqID)
		}
		respondTitleError(r, events.AsError(err))
		return
	}
	if err := r.RespondJSON(events.TitleReply{Title: title, Model: model}); err != nil {
		log.Warn("title reply failed", "chat_id", req.ChatID, "request_id", reqID, "err", err)
	}
}

func respondTitleError(r micro.Request, e *events.Error) {
	body, _ := json.Marshal(events.ErrorEnvelope{Error: e})
	_ = r.Error(strconv.Itoa(e.Status()), e.Code, body)
}
