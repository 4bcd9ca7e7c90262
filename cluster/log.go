package cluster

import (
	"context"
	"fmt"
	"log/slog"

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
func (l *natsLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }

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
