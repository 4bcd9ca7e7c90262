package gateway

import (
	"context"
	"log/slog"
)

// sessionLogger returns base with a session's attributes (session id and
// remote address). Unlike base.With, which has a text or JSON handler
// format them ahead of time and keep the result with each session (a few
// hundred bytes per idle connection), it adds them to each record as it is
// logged: sessions log rarely, and most connections sit idle.
func sessionLogger(base *slog.Logger, id uint64, remote string) *slog.Logger {
	return slog.New(&sessionHandler{h: base.Handler(), id: id, remote: remote})
}

type sessionHandler struct {
	h      slog.Handler
	id     uint64
	remote string
}

func (s *sessionHandler) attrs() []slog.Attr {
	return []slog.Attr{slog.Uint64("session", s.id), slog.String("remote", s.remote)}
}

func (s *sessionHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return s.h.Enabled(ctx, l)
}

func (s *sessionHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(s.attrs()...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return s.h.Handle(ctx, out)
}

func (s *sessionHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return s.h.WithAttrs(append(s.attrs(), attrs...))
}

func (s *sessionHandler) WithGroup(name string) slog.Handler {
	return s.h.WithAttrs(s.attrs()).WithGroup(name)
}
