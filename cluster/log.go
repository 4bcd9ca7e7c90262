package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// LevelTrace is the slog level at which a Config.Logger must be enabled for
// the NATS server to produce protocol traces (one record per protocol
// message: very verbose). Trace records are logged at slog.LevelDebug with
// the attribute trace=true.
const LevelTrace = slog.LevelDebug - 4

// natsLogger adapts a *slog.Logger to server.Logger. Fatalf does not exit:
// it logs at error level and reports the message to onFatal, which must not
// block.
type natsLogger struct {
	log     *slog.Logger
	onFatal func(msg string)
}

var _ server.Logger = (*natsLogger)(nil)

// flags returns the debug and trace switches for SetLoggerV2: the server
// skips formatting what the handler would drop.
func (l *natsLogger) flags() (debug, trace bool) {
	ctx := context.Background()
	return l.log.Enabled(ctx, slog.LevelDebug), l.log.Enabled(ctx, LevelTrace)
}

func (l *natsLogger) logf(level slog.Level, format string, v []any, attrs ...slog.Attr) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.LogAttrs(ctx, level, fmt.Sprintf(format, v...), attrs...)
}

// Noticef logs the server's notices (its start-up banner, routes coming and
// going) at debug level: chatd logs what a person running it needs to know.
func (l *natsLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.logf(warnLevel(format), format, v) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.logf(errorLevel(format), format, v) }

// errorLevel is the level of one of the server's errors: a route that
// cannot be dialled is a warning (its peer is not up yet, as at a normal
// start-up of a cluster; the server tries again, and reports again only
// after many more attempts), everything else an error.
func errorLevel(format string) slog.Level {
	if strings.HasPrefix(format, "Error trying to connect to route") {
		return slog.LevelWarn
	}
	return slog.LevelError
}

// warnLevel is the level of one of the server's warnings: the plaintext
// password notice is about the credentials chatd derives from the cluster
// secret and holds in memory, nothing to act on, so it is debug.
func warnLevel(format string) slog.Level {
	if strings.HasPrefix(format, "Plaintext passwords detected") {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

func (l *natsLogger) Debugf(format string, v ...any) { l.logf(slog.LevelDebug, format, v) }

func (l *natsLogger) Tracef(format string, v ...any) {
	l.logf(slog.LevelDebug, format, v, slog.Bool("trace", true))
}

func (l *natsLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.LogAttrs(context.Background(), slog.LevelError, msg, slog.Bool("fatal", true))
	if l.onFatal != nil {
		l.onFatal(msg)
	}
}
