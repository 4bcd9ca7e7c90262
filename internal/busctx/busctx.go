// Package busctx carries, in a context, what a gateway tells the bus about
// a call without the gateway depending on the bus package.
package busctx

import (
	"context"
	"time"
)

type liveSinceKey struct{}

// WithLiveSince says that the caller has been receiving the room's live
// lines since t: a history read of the room that started at or after t
// answers it as well as one started now.
func WithLiveSince(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, liveSinceKey{}, t)
}

// LiveSince returns what WithLiveSince put in ctx.
func LiveSince(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(liveSinceKey{}).(time.Time)
	return t, ok
}
